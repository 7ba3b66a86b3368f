# One image for both roles: `certbound manager` (the operator) and
# `certbound authorization-server` (the pods it deploys).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Keep in step with `make build`, which CI runs.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/certbound .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/certbound /certbound
USER 65532:65532
ENTRYPOINT ["/certbound"]
CMD ["manager"]
