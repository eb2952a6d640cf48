package agentdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Error is the error every Client method returns for a failed call: the gRPC status
// code and message the server sent, the method, and the server's retry hint.
//
// Test for a kind of failure with errors.Is(err, agentdb.ErrNotFound), the IsNotFound
// style helpers, or ErrorCode(err). status.FromError and status.Code work on it too.
type Error struct {
	// Code is the gRPC status code (codes.NotFound, codes.PermissionDenied, ...).
	Code codes.Code
	// Message is the server's message (or the transport's, for connection failures).
	Message string
	// Method is the full gRPC method, e.g. "/agentdb.v1.Items/Upsert".
	Method string
	// RetryAfter is the server's `retry-after-ms` hint (0 when it sent none).
	RetryAfter time.Duration
	// Attempts is how many times the call was tried (more than 1 after retries).
	Attempts int
	st       *status.Status
}

func (e *Error) Error() string {
	if e.Method == "" {
		return fmt.Sprintf("agentdb: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("agentdb: %s: %s: %s", e.Method, e.Code, e.Message)
}

// GRPCStatus returns the status the server sent, so that status.FromError and
// status.Code work on an *Error.
func (e *Error) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.New(e.Code, e.Message)
}

// Is reports whether target is one of the Err* sentinels (or any *Error without a
// message) with the same code: errors.Is(err, agentdb.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Method == "" && t.Code == e.Code
}

// Sentinels for errors.Is; they carry only a code.
var (
	ErrCanceled           = &Error{Code: codes.Canceled}
	ErrDeadlineExceeded   = &Error{Code: codes.DeadlineExceeded}
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument}
	ErrNotFound           = &Error{Code: codes.NotFound}
	ErrAlreadyExists      = &Error{Code: codes.AlreadyExists}
	ErrPermissionDenied   = &Error{Code: codes.PermissionDenied}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated}
	ErrResourceExhausted  = &Error{Code: codes.ResourceExhausted}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition}
	ErrUnavailable        = &Error{Code: codes.Unavailable}
	ErrInternal           = &Error{Code: codes.Internal}
)

// ErrorCode is the gRPC code of err: codes.OK for nil, the code of an *Error or of any
// error carrying a gRPC status, codes.Canceled / codes.DeadlineExceeded for context
// errors, else codes.Unknown.
func ErrorCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return codes.Canceled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	return status.Code(err)
}

// IsNotFound reports whether err is a NOT_FOUND error (a missing collection, item id
// for delete, agent, queue, workflow or run).
func IsNotFound(err error) bool { return ErrorCode(err) == codes.NotFound }

// IsAlreadyExists reports whether err is ALREADY_EXISTS.
func IsAlreadyExists(err error) bool { return ErrorCode(err) == codes.AlreadyExists }

// IsInvalidArgument reports whether err is INVALID_ARGUMENT (a bad filter, dimension, ...).
func IsInvalidArgument(err error) bool { return ErrorCode(err) == codes.InvalidArgument }

// IsPermissionDenied reports whether err is PERMISSION_DENIED (a key without the role
// or collection scope the call needs).
func IsPermissionDenied(err error) bool { return ErrorCode(err) == codes.PermissionDenied }

// IsUnauthenticated reports whether err is UNAUTHENTICATED (no, unknown, revoked or
// expired credentials).
func IsUnauthenticated(err error) bool { return ErrorCode(err) == codes.Unauthenticated }

// IsResourceExhausted reports whether err is RESOURCE_EXHAUSTED (a rate or storage
// quota, or an overloaded server).
func IsResourceExhausted(err error) bool { return ErrorCode(err) == codes.ResourceExhausted }

// IsUnavailable reports whether err is UNAVAILABLE (the server cannot be reached).
func IsUnavailable(err error) bool { return ErrorCode(err) == codes.Unavailable }

// retryAfter reads the server's `retry-after-ms` hint from trailers (or headers, for
// trailers-only responses).
func retryAfter(mds ...metadata.MD) time.Duration {
	for _, md := range mds {
		for _, v := range md.Get("retry-after-ms") {
			if ms, err := strconv.ParseUint(v, 10, 64); err == nil {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	return 0
}

// toError converts a gRPC error into an *Error (nil stays nil; an *Error is returned
// as it is).
func toError(err error, method string, hint time.Duration, attempts int) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		code := ErrorCode(err)
		st = status.New(code, err.Error())
	}
	return &Error{Code: st.Code(), Message: st.Message(), Method: method, RetryAfter: hint, Attempts: attempts, st: st}
}

// IsFailedPrecondition reports whether err is FAILED_PRECONDITION (e.g. an illegal
// agent state transition).
func IsFailedPrecondition(err error) bool { return ErrorCode(err) == codes.FailedPrecondition }
