// Command go-note checks Citadel audit checkpoints with Go's reference
// implementation of signed notes and transparency logs,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, to show that
// a standard verifier that knows only the log's Ed25519 key accepts a
// Citadel checkpoint (skipping the ML-DSA-65 line, whose key it does not
// know) and agrees on RFC 6962 hashing and proofs.
//
// Usage:
//
//	go-note CHECKPOINT VKEY [ENTRY INDEX PROOF]
//	go-note consistency OLD_CHECKPOINT NEW_CHECKPOINT VKEY PROOF
//
// VKEY is the Ed25519 verifier key string or @FILE. ENTRY is a file holding
// the entry's bytes exactly. PROOF is a file of base64 hashes, one per line,
// or a c2sp.org/tlog-proof@v1 file (its hash lines are used and its index
// must equal INDEX; its embedded checkpoint is ignored: CHECKPOINT is the
// one checked). Exit status: 0 verified, 1 verification failed, 2 usage.
//
// Build in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tlogProofHeader = "c2sp.org/tlog-proof@v1\n"

type usageError struct{ error }

func usagef(format string, args ...interface{}) error {
	return usageError{fmt.Errorf(format, args...)}
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	return b, nil
}

func loadVerifier(arg string) (note.Verifier, error) {
	if strings.HasPrefix(arg, "@") {
		b, err := readFile(arg[1:])
		if err != nil {
			return nil, err
		}
		arg = strings.TrimRight(string(b), "\n")
	}
	v, err := note.NewVerifier(arg)
	if err != nil {
		return nil, usagef("vkey: %v", err)
	}
	return v, nil
}

type sigJSON struct {
	Name  string `json:"name"`
	KeyID string `json:"key_id"`
}

type checkpointJSON struct {
	Origin     string    `json:"origin"`
	Size       int64     `json:"size"`
	Root       string    `json:"root"`
	Verified   []sigJSON `json:"verified_signatures"`
	Unverified []sigJSON `json:"skipped_signatures_unknown_keys"`
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
	json   checkpointJSON
}

// openCheckpoint verifies the note with note.Open and parses the checkpoint
// body. tlog.ParseTree parses the size and hash lines: it insists on the
// first line of Go's checksum database, so that line stands in for the
// origin (which this function reads itself).
func openCheckpoint(msg []byte, v note.Verifier) (*checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("note.Open: %v", err)
	}
	origin, rest, ok := strings.Cut(n.Text, "\n")
	if !ok || origin == "" {
		return nil, errors.New("checkpoint has no origin line")
	}
	tree, err := tlog.ParseTree([]byte("go.sum database tree\n" + rest))
	if err != nil {
		return nil, fmt.Errorf("tlog.ParseTree (size and root lines): %v", err)
	}
	c := &checkpoint{origin: origin, tree: tree}
	c.json = checkpointJSON{Origin: origin, Size: tree.N, Root: tree.Hash.String(),
		Verified: []sigJSON{}, Unverified: []sigJSON{}}
	for _, s := range n.Sigs {
		c.json.Verified = append(c.json.Verified, sigJSON{s.Name, fmt.Sprintf("%08x", s.Hash)})
	}
	for _, s := range n.UnverifiedSigs {
		c.json.Unverified = append(c.json.Unverified, sigJSON{s.Name, fmt.Sprintf("%08x", s.Hash)})
	}
	return c, nil
}

func openCheckpointFile(path string, v note.Verifier) (*checkpoint, error) {
	msg, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return openCheckpoint(msg, v)
}

// readProof reads base64 hashes one per line, or the hash lines of a
// c2sp.org/tlog-proof@v1 file (returning its index, or -1).
func readProof(path string) ([]tlog.Hash, int64, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, 0, err
	}
	index := int64(-1)
	var lines []string
	if bytes.HasPrefix(data, []byte(tlogProofHeader)) {
		head, _, ok := strings.Cut(string(data[len(tlogProofHeader):]), "\n\n")
		if !ok {
			return nil, 0, errors.New("tlog-proof: no blank line before the checkpoint")
		}
		lines = strings.Split(head, "\n")
		if strings.HasPrefix(lines[0], "extra ") {
			lines = lines[1:]
		}
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
			return nil, 0, errors.New("tlog-proof: no index line")
		}
		s := strings.TrimPrefix(lines[0], "index ")
		index, err = strconv.ParseInt(s, 10, 64)
		if err != nil || index < 0 || strconv.FormatInt(index, 10) != s {
			return nil, 0, errors.New("tlog-proof: bad index")
		}
		lines = lines[1:]
	} else if s := strings.TrimSuffix(string(data), "\n"); s != "" {
		lines = strings.Split(s, "\n")
	}
	var p []tlog.Hash
	for i, l := range lines {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, 0, fmt.Errorf("proof line %d: %v", i+1, err)
		}
		p = append(p, h)
	}
	return p, index, nil
}

func run(args []string) (interface{}, error) {
	if len(args) >= 1 && args[0] == "consistency" {
		return runConsistency(args[1:])
	}
	if len(args) != 2 && len(args) != 5 {
		return nil, usagef("expected CHECKPOINT VKEY [ENTRY INDEX PROOF]")
	}
	v, err := loadVerifier(args[1])
	if err != nil {
		return nil, err
	}
	c, err := openCheckpointFile(args[0], v)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{"checkpoint": c.json}
	if len(args) == 2 {
		return out, nil
	}
	entry, err := readFile(args[2])
	if err != nil {
		return nil, err
	}
	index, err := strconv.ParseInt(args[3], 10, 64)
	if err != nil || index < 0 {
		return nil, usagef("INDEX must be a non-negative decimal")
	}
	p, pindex, err := readProof(args[4])
	if err != nil {
		return nil, err
	}
	if pindex >= 0 && pindex != index {
		return nil, fmt.Errorf("the tlog-proof is for index %d, not %d", pindex, index)
	}
	leaf := tlog.RecordHash(entry)
	if err := tlog.CheckRecord(tlog.RecordProof(p), c.tree.N, c.tree.Hash, index, leaf); err != nil {
		return nil, fmt.Errorf("tlog.CheckRecord: %v", err)
	}
	out["inclusion"] = map[string]interface{}{
		"index": index, "leaf_hash": leaf.String(), "proof_hashes": len(p), "verified": true,
	}
	return out, nil
}

func runConsistency(args []string) (interface{}, error) {
	if len(args) != 4 {
		return nil, usagef("expected consistency OLD_CHECKPOINT NEW_CHECKPOINT VKEY PROOF")
	}
	v, err := loadVerifier(args[2])
	if err != nil {
		return nil, err
	}
	old, err := openCheckpointFile(args[0], v)
	if err != nil {
		return nil, fmt.Errorf("old checkpoint: %v", err)
	}
	cur, err := openCheckpointFile(args[1], v)
	if err != nil {
		return nil, fmt.Errorf("new checkpoint: %v", err)
	}
	if old.origin != cur.origin {
		return nil, fmt.Errorf("the checkpoints are of different logs: %q, %q", old.origin, cur.origin)
	}
	p, _, err := readProof(args[3])
	if err != nil {
		return nil, err
	}
	if old.tree.N == 0 {
		return nil, usagef("x/mod's tlog.CheckTree does not take an old tree of size 0")
	}
	if err := tlog.CheckTree(tlog.TreeProof(p), cur.tree.N, cur.tree.Hash, old.tree.N, old.tree.Hash); err != nil {
		return nil, fmt.Errorf("tlog.CheckTree: %v", err)
	}
	return map[string]interface{}{
		"old": old.json, "new": cur.json,
		"consistency": map[string]interface{}{"proof_hashes": len(p), "verified": true},
	}, nil
}

func main() {
	out, err := run(os.Args[1:])
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "usage error: %v\nusage: go-note CHECKPOINT VKEY [ENTRY INDEX PROOF]\n       go-note consistency OLD_CHECKPOINT NEW_CHECKPOINT VKEY PROOF\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
}
