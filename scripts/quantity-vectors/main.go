// Command quantity-vectors prints how k8s.io/apimachinery's resource.ParseQuantity reads
// each input line, as JSON, for Gibbous's quantity tests (tests/fixtures/quantity-vectors.json).
//
//	go run . < inputs.txt > ../../tests/fixtures/quantity-vectors.json
//
// Each input is one line of stdin, JSON-encoded (so any byte can be given).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/api/resource"
)

type vector struct {
	Input string `json:"input"`
	OK    bool   `json:"ok"`
	// The exact value (inf.Dec, after upstream's rounding to nano), when OK.
	Decimal string `json:"decimal,omitempty"`
	Format  string `json:"format,omitempty"`
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	var out []vector
	for scanner.Scan() {
		var input string
		if err := json.Unmarshal(scanner.Bytes(), &input); err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		q, err := resource.ParseQuantity(input)
		v := vector{Input: input, OK: err == nil}
		if err == nil {
			v.Decimal = q.AsDec().String()
			v.Format = string(q.Format)
		}
		out = append(out, v)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", " ")
	if err := encoder.Encode(out); err != nil {
		os.Exit(1)
	}
}
