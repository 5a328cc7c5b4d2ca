// Package sipp reads what SIPp (Debian's sip-tester), the outside SIP load
// generator of the test suite, leaves behind.
package sipp

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
)

// Counts reads the SuccessfulCall(C) and FailedCall(C) columns of the
// last row of a SIPp statistics file.
func Counts(path string) (ok, failed int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = ';'
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return 0, 0, err
	}
	if len(rows) < 2 {
		return 0, 0, fmt.Errorf("%s: %d rows", path, len(rows))
	}
	head, last := rows[0], rows[len(rows)-1]
	found := 0
	for i, name := range head {
		if i >= len(last) {
			break
		}
		switch name {
		case "SuccessfulCall(C)":
			ok, err = strconv.Atoi(last[i])
			found++
		case "FailedCall(C)":
			failed, err = strconv.Atoi(last[i])
			found++
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%s: column %s: %w", path, name, err)
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s: no SuccessfulCall(C) or FailedCall(C) column", path)
	}
	return ok, failed, nil
}
