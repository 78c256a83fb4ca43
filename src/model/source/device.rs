//! Picks the candle device in one place: CPU by default, CUDA with the `cuda` feature.

use candle_core::Device;

use crate::model::ModelError;

/// Parses a device setting: `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    match spec.trim() {
        "" | "cpu" => Ok(Device::Cpu),
        other => cuda_device(other),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(spec: &str) -> Result<Device, ModelError> {
    let ordinal = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad_device(spec))?,
        None => return Err(bad_device(spec)),
    };
    Ok(Device::new_cuda(ordinal)?)
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(spec: &str) -> Result<Device, ModelError> {
    if spec.starts_with("cuda") {
        return Err(ModelError::Invalid {
            path: spec.into(),
            reason: "this ragd binary was built without the `cuda` feature; rebuild with \
                     `cargo build --release --features cuda`"
                .to_string(),
        });
    }
    Err(bad_device(spec))
}

fn bad_device(spec: &str) -> ModelError {
    ModelError::Invalid {
        path: spec.into(),
        reason: "unknown device; use `cpu`, `cuda` or `cuda:N`".to_string(),
    }
}
