package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/callmesh/callmesh/node"
)

// callAPI sends one request to a node's admin API at base, with body (if
// any) as JSON, and decodes a successful answer into out (if any). An error
// answer becomes an error carrying the node's message, with exit code 2 for
// 400 and exitNotFound for 404.
func callAPI(ctx context.Context, base, method, path string, body, out any) error {
	u := base + path
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin API %s: encode request: %w", u, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return usageErr("--api: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API %s: %w", u, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API %s: %w", u, err)
		}
		return nil
	}
	var e node.ErrorResponse
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		// Not an answer of the user API (an older node, another server).
		return fmt.Errorf("admin API %s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(data)))
	}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		return &exitError{code: 2, err: errors.New(e.Error)}
	case http.StatusNotFound:
		return &exitError{code: exitNotFound, err: errors.New(e.Error)}
	}
	return fmt.Errorf("admin API %s: %s", u, e.Error)
}
