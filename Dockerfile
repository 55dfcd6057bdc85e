# A small static image of stampede: the binary alone on distroless/static
# (CA certificates, tzdata, /etc/passwd with the nonroot user 65532), run as
# that user, entrypoint stampede.
#
#   docker build -t REGISTRY/stampede:TAG --build-arg VERSION=TAG .
#   stampede k8s scenario.yaml --segments 4 --image REGISTRY/stampede:TAG | kubectl apply -f -
#
# No Docker engine runs on this project's machines, so no image was built
# from this file here. What is checked (cmd/stampede TestDockerfileBuild):
# its go build line, run as written, makes a statically linked binary that
# runs "stampede help", and its USER is the user the Kubernetes pods run as.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/stampede-load/stampede.Version=${VERSION}" -o /out/stampede ./cmd/stampede

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/stampede /usr/local/bin/stampede
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stampede"]
CMD ["help"]
