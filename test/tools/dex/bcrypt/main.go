// Command dex-bcrypt prints the bcrypt hash of each line read from standard
// input, one hash per line, for the "hash" field of Dex's staticPasswords.
//
// test/tools/dex/build.sh builds it inside Dex's own module next to bin/dex,
// as bin/dex-bcrypt; test/scripts/dex-up.sh and the Go package test/peers/dex
// run it, so that neither the main module nor the scripts need a bcrypt
// implementation of their own. Dex refuses a login whose stored hash has a
// cost below 10 (bcrypt.DefaultCost) or above 16: keep -cost within that
// range.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	cost := flag.Int("cost", bcrypt.DefaultCost, "bcrypt cost (Dex accepts 10-16 at login)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: dex-bcrypt [-cost N] < passwords (one per line)")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		hash, err := bcrypt.GenerateFromPassword(in.Bytes(), *cost)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dex-bcrypt:", err)
			os.Exit(1)
		}
		fmt.Fprintf(out, "%s\n", hash)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "dex-bcrypt:", err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "dex-bcrypt:", err)
		os.Exit(1)
	}
}
