//! How an outcome reads on each face: one table, from the REST status a service answers to the
//! gRPC code its gRPC face answers, and back (what the lab records for a gRPC answer, so that
//! both faces' results are counted by the same rules).
//!
//! | outcome                                        | REST      | gRPC                  |
//! |------------------------------------------------|-----------|-----------------------|
//! | placed / reserved / sent                        | 201 / 200 | `OK`                  |
//! | the order is not valid (body, id, items)       | 400 / 422 | `INVALID_ARGUMENT`    |
//! | out of stock                                    | 409       | `FAILED_PRECONDITION` |
//! | Inventory did not answer within the deadline    | 504       | `DEADLINE_EXCEEDED`   |
//! | Inventory unreachable, or failing               | 503       | `UNAVAILABLE`         |
//! | a service's own failure (its store, an injected 500) | 500  | `INTERNAL`            |
//! | no such route / method                          | 404       | `UNIMPLEMENTED` (tonic's own) |
//!
//! **Inventory failing reads `UNAVAILABLE` at Order, not `INTERNAL`.** Inventory itself answers
//! an injected 500 as `INTERNAL` (its own failure); Order, which called it, is not broken: a
//! dependency it needs is not usable now, and the call may be tried again later under the same
//! order id (Inventory decides an order id once). That is what `UNAVAILABLE` means in gRPC and
//! what 503 means in REST, and it is the code gRPC clients retry; `INTERNAL` would tell the
//! client that Order has a bug.

use http::StatusCode;
use tonic::Code;

/// The gRPC code of an answer a REST face would give with `status`.
pub fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        400..=499 => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

/// The REST status of a gRPC answer with `code` (`OK` reads as 200: a caller that means 201
/// says so). The inverse of [`code_for`] on the codes the services answer; a code they never
/// answer reads as 500, and one a client makes up for itself (tonic's `CANCELLED`) as 499.
pub fn status_for(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::UNPROCESSABLE_ENTITY,
        Code::PermissionDenied | Code::Unauthenticated => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled => StatusCode::from_u16(499).expect("in range"),
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_a_service_answers_maps_to_its_code_and_back() {
        for (status, code) in [
            (StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidArgument),
            (StatusCode::CONFLICT, Code::FailedPrecondition),
            (StatusCode::GATEWAY_TIMEOUT, Code::DeadlineExceeded),
            (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
        ] {
            assert_eq!(code_for(status), code, "{status}");
            assert_eq!(status_for(code), status, "{code:?}");
        }
        assert_eq!(code_for(StatusCode::BAD_REQUEST), Code::InvalidArgument);
        assert_eq!(code_for(StatusCode::CREATED), Code::Ok);
    }
}
