package kes_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/openkes/openkes/kes"
)

func ExampleNewClient() {
	key, err := kes.ParseAPIKey(os.Getenv("KES_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	client := kes.NewClient("127.0.0.1:7373", key)
	client.Endpoints = append(client.Endpoints, "127.0.0.2:7373") // a second replica

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := client.CreateKey(ctx, "my-key"); err != nil && !errors.Is(err, kes.ErrKeyExists) {
		log.Fatal(err)
	}
	dek, err := client.GenerateKey(ctx, "my-key", []byte("bucket/object"))
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := client.Decrypt(ctx, "my-key", dek.Ciphertext, []byte("bucket/object"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(bytes.Equal(plaintext, dek.Plaintext))
}

func ExampleParseAPIKey() {
	key, err := kes.ParseAPIKey("kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.Identity())

	_, err = kes.ParseAPIKey("kes:v1:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
	fmt.Println(err)
	// Output:
	// 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22
	// kes: invalid API key: unsupported type
}

func ExampleGenerateAPIKey() {
	// A fixed seed makes the example deterministic; pass nil to use
	// crypto/rand.
	key, err := kes.GenerateAPIKey(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(key)
	fmt.Println(key.Identity())
	// Output:
	// kes:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	// 339e2ff917630507b6a423b5ce084e285d1fa65d93b3e27a6195d3bbebc9ae23
}

func ExampleGenerateCertificate() {
	key, err := kes.ParseAPIKey("kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc")
	if err != nil {
		log.Fatal(err)
	}
	cert, err := kes.GenerateCertificate(key, kes.WithDNSNames("localhost"), kes.WithServerAuth())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cert.Leaf.Subject.CommonName)
	fmt.Println(cert.Leaf.DNSNames)
	fmt.Println(cert.Leaf.ExtKeyUsage[1] == x509.ExtKeyUsageServerAuth)
	fmt.Println(kes.IdentityOf(cert.Leaf) == key.Identity())
	// Output:
	// 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22
	// [localhost]
	// true
	// true
}

func ExampleError() {
	// Errors returned by a Client compare equal to the sentinels when both
	// the status and the message match.
	var err error = kes.NewError(404, "key does not exist")
	fmt.Println(errors.Is(err, kes.ErrKeyNotFound))
	fmt.Println(errors.Is(err, kes.ErrPolicyNotFound))

	var e kes.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status(), e)
	}
	// Output:
	// true
	// false
	// 404 key does not exist
}
