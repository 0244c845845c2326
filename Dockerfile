# The sekisho image: one static binary (controller, proxy, and the rest of
# its subcommands) on a distroless base, running as non-root.
#   docker build -t sekisho:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/sekisho ./cmd/sekisho

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sekisho /usr/local/bin/sekisho
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sekisho"]
