module github.com/openkes/openkes/interop

go 1.26.0

require (
	github.com/minio/kms-go/kes v0.3.1
	github.com/openkes/openkes v0.0.0
)

require (
	aead.dev/mem v0.2.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.5 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.74.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/openkes/openkes => ../
