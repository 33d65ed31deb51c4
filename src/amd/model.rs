//! The learned part of the decision: a small multilayer perceptron (one hidden layer,
//! tanh, logistic output) from [`Features`] to P(machine).
//!
//! The weights are data, not code: `src/amd/model.json`, written by
//! `python3 test-media/train_amd.py` from the `train` splits of the corpora only, embedded in
//! the binary and parsed once at start-up. The file names its version, the feature list
//! it reads, in its order (each one of [`FEATURE_NAMES`], so a model trained before a
//! feature was added still reads the ones it knows) and the command that made it.

use std::sync::OnceLock;

use serde::Deserialize;

use super::features::{Features, FEATURE_COUNT, FEATURE_NAMES};

/// The model's JSON (see the module docs).
pub const MODEL_JSON: &str = include_str!("model.json");

/// Why a model file could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("amd model: invalid JSON: {0}")]
    Json(String),
    #[error("amd model {version}: features {found:?} do not match the detector's {expected:?}")]
    Features { version: String, found: Vec<String>, expected: Vec<String> },
    #[error("amd model {version}: {what} has the wrong shape")]
    Shape { version: String, what: &'static str },
}

#[derive(Debug, Clone, Deserialize)]
struct ModelFile {
    version: String,
    features: Vec<String>,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// Hidden layer: one row of `features.len()` weights per hidden unit.
    w1: Vec<Vec<f32>>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
}

/// The index in `known` of each of a model file's `names`, or the error naming both lists.
pub(super) fn indexes_of(version: &str, names: &[String], known: &[&str]) -> Result<Vec<usize>, ModelError> {
    names.iter().map(|n| known.iter().position(|m| m == n)).collect::<Option<Vec<_>>>().ok_or_else(|| {
        ModelError::Features {
            version: version.to_string(),
            found: names.to_vec(),
            expected: known.iter().map(|s| s.to_string()).collect(),
        }
    })
}

/// The logistic function: log-odds to a probability.
pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// A parsed, shape-checked model.
#[derive(Debug, Clone)]
pub struct Model {
    pub version: String,
    /// Index into [`FEATURE_NAMES`] of each feature the model reads, in its file's order.
    index: Vec<usize>,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// Row-major: one row of `index.len()` weights per hidden unit.
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
}

impl Model {
    /// Parses and checks a model file's JSON.
    pub fn parse(json: &str) -> Result<Model, ModelError> {
        let f: ModelFile = serde_json::from_str(json).map_err(|e| ModelError::Json(e.to_string()))?;
        let index = indexes_of(&f.version, &f.features, &FEATURE_NAMES)?;
        let shape = |what| ModelError::Shape { version: f.version.clone(), what };
        let n = index.len();
        if n == 0 || n > FEATURE_COUNT {
            return Err(shape("features (none, or more than the detector measures)"));
        }
        if f.mean.len() != n || f.scale.len() != n {
            return Err(shape("mean or scale"));
        }
        if f.w1.iter().any(|r| r.len() != n) {
            return Err(shape("w1"));
        }
        if f.w1.is_empty() || f.b1.len() != f.w1.len() || f.w2.len() != f.w1.len() {
            return Err(shape("hidden layer"));
        }
        let all = f.mean.iter().chain(&f.scale).chain(f.w1.iter().flatten()).chain(&f.b1).chain(&f.w2);
        if !all.chain(std::iter::once(&f.b2)).all(|v| v.is_finite()) {
            return Err(shape("a weight (not finite)"));
        }
        let w1 = f.w1.into_iter().flatten().collect();
        Ok(Model { version: f.version, index, mean: f.mean, scale: f.scale, w1, b1: f.b1, w2: f.w2, b2: f.b2 })
    }

    /// The built-in model, parsed on first use.
    pub fn builtin() -> &'static Model {
        static MODEL: OnceLock<Model> = OnceLock::new();
        // The embedded file is checked by a unit test, so this cannot fail in a build
        // that passed its tests.
        MODEL.get_or_init(|| Model::parse(MODEL_JSON).expect("src/amd/model.json is valid"))
    }

    /// P(machine) for one feature vector.
    pub fn p_machine(&self, x: &Features) -> f32 {
        sigmoid(self.logit(x))
    }

    /// The log-odds of a machine for one feature vector.
    pub fn logit(&self, x: &Features) -> f32 {
        let mut z = [0.0f32; FEATURE_COUNT];
        for (k, &i) in self.index.iter().enumerate() {
            z[k] = (x.0[i] - self.mean[k]) / self.scale[k];
        }
        let z = &z[..self.index.len()];
        let mut out = self.b2;
        for ((w, b), v) in self.w1.chunks_exact(self.index.len()).zip(&self.b1).zip(&self.w2) {
            let h = w.iter().zip(z).map(|(a, b)| a * b).sum::<f32>() + b;
            out += v * h.tanh();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_parses() {
        let m = Model::parse(MODEL_JSON).unwrap();
        assert!(!m.version.is_empty());
        let p = m.p_machine(&Features([0.0; FEATURE_COUNT]));
        assert!((0.0..=1.0).contains(&p));
    }

    #[test]
    fn wrong_features_and_shapes_are_named() {
        let e = Model::parse(r#"{"version":"x","features":["a"],"mean":[],"scale":[],"w1":[],"b1":[],"w2":[],"b2":0}"#);
        assert!(matches!(e, Err(ModelError::Features { .. })), "{e:?}");
        let names: Vec<String> = FEATURE_NAMES.iter().map(|s| format!("\"{s}\"")).collect();
        let zeros = vec!["0"; FEATURE_COUNT].join(",");
        let json = format!(
            r#"{{"version":"x","features":[{}],"mean":[{zeros}],"scale":[{zeros}],"w1":[[1]],"b1":[0],"w2":[1],"b2":0}}"#,
            names.join(",")
        );
        assert!(matches!(Model::parse(&json), Err(ModelError::Shape { what: "w1", .. })));
        assert!(matches!(Model::parse("nope"), Err(ModelError::Json(_))));
    }

    #[test]
    fn a_model_of_some_features_reads_those() {
        let json = r#"{"version":"x","features":["words","elapsed_s"],"mean":[1,0],"scale":[2,1],
            "w1":[[1,0],[0,1]],"b1":[0,0],"w2":[1,-1],"b2":0.5}"#;
        let m = Model::parse(json).unwrap();
        let mut x = [0.0f32; FEATURE_COUNT];
        x[8] = 3.0; // words
        x[0] = 0.5; // elapsed_s
        let want = 0.5 + 1.0f32.tanh() - 0.5f32.tanh();
        assert!((m.logit(&Features(x)) - want).abs() < 1e-6, "{}", m.logit(&Features(x)));
        let none = r#"{"version":"x","features":[],"mean":[],"scale":[],"w1":[[]],"b1":[0],"w2":[1],"b2":0}"#;
        assert!(matches!(Model::parse(none), Err(ModelError::Shape { .. })));
    }
}
