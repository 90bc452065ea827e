package kes_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/openkes/openkes/kes"
)

func ExampleClient_RotateKey() {
	key, err := kes.ParseAPIKey(os.Getenv("KES_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	client := kes.NewClient("127.0.0.1:7373", key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	old, err := client.GenerateKey(ctx, "my-key", []byte("bucket/object"))
	if err != nil {
		log.Fatal(err)
	}
	version, err := client.RotateKey(ctx, "my-key")
	if err != nil {
		log.Fatal(err)
	}
	// The old ciphertext still decrypts; rewrap moves it to the new
	// version without the plaintext leaving the server.
	ciphertext, v, err := client.RewrapKey(ctx, "my-key", old.Ciphertext, []byte("bucket/object"))
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := client.Decrypt(ctx, "my-key", ciphertext, []byte("bucket/object"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v == version, bytes.Equal(plaintext, old.Plaintext))
}
