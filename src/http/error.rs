//! Errors over HTTP: every failure is a status and a JSON body
//! `{"error": {"message", "type", "code"}}` (the shape OpenAI clients read), decided from the
//! same [`crate::api::code`] the gRPC skin answers with, so one error means the same on both.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tonic::Code;

use crate::error::ServiceError;

/// A failed HTTP request.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code naming the kind of failure.
    pub code: Code,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A failure of kind `code` with the HTTP status that kind maps to.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: http_status(code),
            code,
            message: message.into(),
        }
    }

    /// The caller sent something unusable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// Nothing by that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": type_name(self.code),
                "code": code_name(self.code),
            }
        })
    }
}

/// The HTTP status for a kind of failure (Google's API mapping of the gRPC codes, with 409 for
/// ALREADY_EXISTS and ABORTED, and 499 for a caller that went away).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn type_name(code: Code) -> String {
    code_name(code).to_ascii_lowercase()
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let code = crate::api::code(&e);
        if code == Code::Internal && !matches!(e, ServiceError::MalformedRequest(_)) {
            tracing::error!(error = %e, "internal error");
        }
        let mut out = Self::new(code, e.to_string());
        if matches!(e, ServiceError::MessageTooLarge(_)) {
            out.status = StatusCode::PAYLOAD_TOO_LARGE;
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections (malformed JSON, wrong types, wrong content type, a body over
/// the limit) answer in the API's error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    let status = r.status();
    let mut e = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::ResourceExhausted,
            format!(
                "the request body is larger than the server's limit ({})",
                r.body_text()
            ),
        )
    } else {
        ApiError::invalid(r.body_text())
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        e.status = status;
    }
    e
}

/// Path parameters, with rejections in the API's error shape.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r: PathRejection| ApiError::invalid(r.body_text()))
    }
}

/// Query parameters, with rejections in the API's error shape.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::invalid(r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::Refused;

    #[test]
    fn service_errors_map_to_the_statuses_clients_expect() {
        let cases: [(ServiceError, u16, &str); 5] = [
            (
                index::IndexError::CollectionNotFound { name: "x".into() }.into(),
                404,
                "NOT_FOUND",
            ),
            (
                Refused::Overloaded("server").into(),
                429,
                "RESOURCE_EXHAUSTED",
            ),
            (
                ServiceError::InvalidArgument("k".into()),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                ServiceError::MessageTooLarge("big".into()),
                413,
                "RESOURCE_EXHAUSTED",
            ),
            (
                ServiceError::DeadlineExceeded { elapsed_ms: 3 },
                504,
                "DEADLINE_EXCEEDED",
            ),
        ];
        for (e, status, code) in cases {
            let e = ApiError::from(e);
            assert_eq!(e.status.as_u16(), status, "{}", e.message);
            assert_eq!(e.body()["error"]["code"], code);
            assert_eq!(e.body()["error"]["type"], code.to_ascii_lowercase());
        }
        let overloaded = ApiError::from(ServiceError::from(Refused::Overloaded("server")));
        let response = overloaded.into_response();
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
