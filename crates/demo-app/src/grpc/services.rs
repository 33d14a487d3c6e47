//! podinfo's gRPC services, answering as the HTTP routes of the same name do.

use std::time::Duration;

use tonic::{Code, Request, Response, Status};

use super::pb;
use crate::routes::{delay, env, info, token};
use crate::state::AppState;
use crate::version::{REVISION, VERSION};

/// One value for every service: each is a view of the app's state.
#[derive(Clone)]
pub struct Podinfo(pub AppState);

#[tonic::async_trait]
impl pb::info::info_service_server::InfoService for Podinfo {
    async fn info(&self, _: Request<pb::info::InfoRequest>) -> Result<Response<pb::info::InfoResponse>, Status> {
        let info = info::info(&self.0);
        Ok(Response::new(pb::info::InfoResponse {
            hostname: info.hostname,
            version: info.version,
            revision: info.revision,
            color: info.color,
            logo: info.logo,
            message: info.message,
            goos: info.goos,
            goarch: info.goarch,
            runtime: info.runtime,
            numgoroutine: info.num_goroutine,
            numcpu: info.num_cpu,
        }))
    }
}

#[tonic::async_trait]
impl pb::version::version_service_server::VersionService for Podinfo {
    async fn version(
        &self,
        _: Request<pb::version::VersionRequest>,
    ) -> Result<Response<pb::version::VersionResponse>, Status> {
        Ok(Response::new(pb::version::VersionResponse { version: VERSION.into(), commit: REVISION.into() }))
    }
}

#[tonic::async_trait]
impl pb::echo::echo_service_server::EchoService for Podinfo {
    async fn echo(&self, request: Request<pb::echo::Message>) -> Result<Response<pb::echo::Message>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tonic::async_trait]
impl pb::delay::delay_service_server::DelayService for Podinfo {
    async fn delay(
        &self,
        request: Request<pb::delay::DelayRequest>,
    ) -> Result<Response<pb::delay::DelayResponse>, Status> {
        let seconds = request.into_inner().seconds;
        let wait = u64::try_from(seconds).ok().filter(|s| *s <= delay::MAX_DELAY_SECONDS).ok_or_else(|| {
            Status::invalid_argument(format!("invalid delay {seconds}: use 0-{} seconds", delay::MAX_DELAY_SECONDS))
        })?;
        tokio::time::sleep(Duration::from_secs(wait)).await;
        Ok(Response::new(pb::delay::DelayResponse { message: seconds }))
    }
}

#[tonic::async_trait]
impl pb::env::env_service_server::EnvService for Podinfo {
    async fn env(&self, _: Request<pb::env::EnvRequest>) -> Result<Response<pb::env::EnvResponse>, Status> {
        let env_vars = env::environment(std::env::vars_os(), &self.0.config.env_redact);
        Ok(Response::new(pb::env::EnvResponse { env_vars }))
    }
}

#[tonic::async_trait]
impl pb::header::header_service_server::HeaderService for Podinfo {
    async fn header(
        &self,
        request: Request<pb::header::HeaderRequest>,
    ) -> Result<Response<pb::header::HeaderResponse>, Status> {
        let metadata = request.metadata().clone().into_headers();
        let mut headers: Vec<String> = metadata
            .keys()
            .map(|name| {
                let values: Vec<_> =
                    metadata.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
                format!("{name}={}", values.join(","))
            })
            .collect();
        headers.sort();
        Ok(Response::new(pb::header::HeaderResponse { headers }))
    }
}

#[tonic::async_trait]
impl pb::panic::panic_service_server::PanicService for Podinfo {
    async fn panic(&self, _: Request<pb::panic::PanicRequest>) -> Result<Response<pb::panic::PanicResponse>, Status> {
        if !self.0.config.control_endpoints {
            return Err(Status::permission_denied("Panic is off: --control-endpoints=false"));
        }
        tracing::error!("panic command received over gRPC, exiting with 255");
        std::process::exit(255);
    }
}

#[tonic::async_trait]
impl pb::status::status_service_server::StatusService for Podinfo {
    async fn status(
        &self,
        request: Request<pb::status::StatusRequest>,
    ) -> Result<Response<pb::status::StatusResponse>, Status> {
        let name = request.into_inner().code;
        match code_named(&name) {
            Some(Code::Ok) => Ok(Response::new(pb::status::StatusResponse { status: name })),
            Some(code) => Err(Status::new(code, "")),
            None => Err(Status::unknown(format!(
                "unknown status code {name:?}: use a gRPC code name such as Ok, NotFound or Unavailable"
            ))),
        }
    }
}

/// A gRPC status code by its name as podinfo takes it (`NotFound`).
fn code_named(name: &str) -> Option<Code> {
    const CODES: [(&str, Code); 17] = [
        ("Ok", Code::Ok),
        ("Canceled", Code::Cancelled),
        ("Unknown", Code::Unknown),
        ("InvalidArgument", Code::InvalidArgument),
        ("DeadlineExceeded", Code::DeadlineExceeded),
        ("NotFound", Code::NotFound),
        ("AlreadyExists", Code::AlreadyExists),
        ("PermissionDenied", Code::PermissionDenied),
        ("ResourceExhausted", Code::ResourceExhausted),
        ("FailedPrecondition", Code::FailedPrecondition),
        ("Aborted", Code::Aborted),
        ("OutOfRange", Code::OutOfRange),
        ("Unimplemented", Code::Unimplemented),
        ("Internal", Code::Internal),
        ("Unavailable", Code::Unavailable),
        ("DataLoss", Code::DataLoss),
        ("Unauthenticated", Code::Unauthenticated),
    ];
    CODES.iter().find(|(n, _)| *n == name).map(|(_, code)| *code)
}

#[tonic::async_trait]
impl pb::token::token_service_server::TokenService for Podinfo {
    async fn token_generate(
        &self,
        _: Request<pb::token::TokenRequest>,
    ) -> Result<Response<pb::token::TokenResponse>, Status> {
        let (token, exp) = token::sign("anonymous".into(), self.0.jwt_secret.as_bytes())
            .map_err(|e| Status::internal(format!("signing failed: {e}")))?;
        Ok(Response::new(pb::token::TokenResponse {
            token,
            expires_at: token::rfc3339(exp),
            message: "Token generated successfully".into(),
        }))
    }

    async fn token_validate(
        &self,
        request: Request<pb::token::TokenRequest>,
    ) -> Result<Response<pb::token::TokenResponse>, Status> {
        let Some(header) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated("Authorization token not found in metadata"));
        };
        let claims = token::check_bearer(header.as_bytes(), self.0.jwt_secret.as_bytes())
            .map_err(|why| Status::unauthenticated(format!("invalid token: {why}")))?;
        Ok(Response::new(pb::token::TokenResponse {
            token: claims.name,
            expires_at: token::rfc3339(claims.exp),
            message: String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_name_podinfo_takes_is_known() {
        assert_eq!(super::code_named("NotFound"), Some(tonic::Code::NotFound));
        assert_eq!(super::code_named("Canceled"), Some(tonic::Code::Cancelled));
        assert_eq!(super::code_named("notfound"), None);
    }
}
