package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/store"
)

// UsersResponse is the body of GET /api/v1/users: the accounts homed on
// the node, sorted by name.
type UsersResponse struct {
	Users []accounts.View `json:"users"`
}

// PasswordRequest is the body of PUT /api/v1/users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// ErrorResponse is the body of an admin API error: a message that names the
// offending field when there is one.
type ErrorResponse struct {
	Error string `json:"error"`
}

// maxUserBody bounds the body of a user request.
const maxUserBody = 64 << 10

// registerUserRoutes serves the accounts homed on the node:
//
//	GET    /api/v1/users                 200 UsersResponse
//	POST   /api/v1/users                 201 accounts.View (body accounts.Params); 400, 409
//	GET    /api/v1/users/{name}          200 accounts.View; 404
//	PUT    /api/v1/users/{name}/password 204 (body PasswordRequest); 400, 404
//	DELETE /api/v1/users/{name}          204; 404
//
// New accounts are homed on this node (its peer ID) and their credentials
// computed for its domain. Errors are ErrorResponse bodies.
func (n *Node) registerUserRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/users", n.handleListUsers)
	mux.HandleFunc("POST /api/v1/users", n.handleAddUser)
	mux.HandleFunc("GET /api/v1/users/{name}", n.handleGetUser)
	mux.HandleFunc("PUT /api/v1/users/{name}/password", n.handleSetUserPassword)
	mux.HandleFunc("DELETE /api/v1/users/{name}", n.handleDeleteUser)
}

func (n *Node) handleListUsers(w http.ResponseWriter, _ *http.Request) {
	list, err := n.accounts.List()
	if err != nil {
		n.userError(w, err)
		return
	}
	resp := UsersResponse{Users: make([]accounts.View, 0, len(list))}
	for _, a := range list {
		resp.Users = append(resp.Users, a.View())
	}
	writeJSONStatus(w, http.StatusOK, resp)
}

func (n *Node) handleAddUser(w http.ResponseWriter, r *http.Request) {
	var p accounts.Params
	if err := decodeBody(w, r, &p, false); err != nil {
		n.userError(w, err)
		return
	}
	a, err := p.Account(n.id.String(), n.cfg.Domain, time.Now())
	if err == nil {
		a, err = n.accounts.Add(a)
	}
	if err != nil {
		n.userError(w, err)
		return
	}
	n.log.Info("user added", "user", a.Name, "class", a.Class, "allow", a.Allow, "max_calls", a.MaxCalls, "balance", a.Balance.String())
	w.Header().Set("Location", "/api/v1/users/"+url.PathEscape(a.Name))
	writeJSONStatus(w, http.StatusCreated, a.View())
}

func (n *Node) handleGetUser(w http.ResponseWriter, r *http.Request) {
	a, err := n.accounts.Get(r.PathValue("name"))
	if err != nil {
		n.userError(w, err)
		return
	}
	writeJSONStatus(w, http.StatusOK, a.View())
}

func (n *Node) handleSetUserPassword(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req PasswordRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		n.userError(w, err)
		return
	}
	if err := n.accounts.SetPassword(name, n.cfg.Domain, req.Password); err != nil {
		n.userError(w, err)
		return
	}
	n.log.Info("user password changed", "user", name)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := n.accounts.Delete(name); err != nil {
		n.userError(w, err)
		return
	}
	n.log.Info("user deleted", "user", name)
	w.WriteHeader(http.StatusNoContent)
}

// errBadBody marks a request body that is not the JSON object expected.
var errBadBody = errors.New("request body")

// decodeBody decodes exactly one JSON value from the request body into v;
// with strict, unknown fields are errors (accounts.Params is always strict).
func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxUserBody))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, accounts.ErrInvalid):
			return err
		case errors.As(err, &mbe):
			return fmt.Errorf("%w: larger than %d bytes: %w", errBadBody, mbe.Limit, err)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: empty, want a JSON object", errBadBody)
		}
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the JSON object", errBadBody)
	}
	return nil
}

// userError answers with the status that err calls for and its message.
func (n *Node) userError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, accounts.ErrInvalid), errors.Is(err, errBadBody):
		status = http.StatusBadRequest
	case errors.Is(err, accounts.ErrExists):
		status = http.StatusConflict
	case errors.Is(err, accounts.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrClosed):
		status = http.StatusServiceUnavailable
	default:
		n.log.Error("user request failed", "err", err)
	}
	writeJSONStatus(w, status, ErrorResponse{Error: err.Error()})
}

// writeJSONStatus writes v as indented JSON with the given status.
func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
