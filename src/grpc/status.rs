//! [`ServiceError`] → gRPC status, by [`crate::api::code`]. Internal errors are logged once,
//! here.

use tonic::Code;

use crate::error::ServiceError;

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let code = crate::api::code(&e);
        if code == Code::Internal && !matches!(e, ServiceError::MalformedRequest(_)) {
            tracing::error!(error = %e, "internal error");
        }
        tonic::Status::new(code, e.to_string())
    }
}
