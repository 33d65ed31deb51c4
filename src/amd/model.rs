//! The learned part of the decision: a small multilayer perceptron (one hidden layer,
//! tanh, logistic output) from [`Features`] to P(machine).
//!
//! The weights are data, not code: `src/amd/model.json`, written by
//! `python3 test-media/train_amd.py` from the `train` splits of the corpora only, embedded in
//! the binary and parsed once at start-up. The file names its version, the feature list
//! in order (checked against [`FEATURE_NAMES`] when parsed) and the command that made it.

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

/// The logistic function: log-odds to a probability.
pub fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// A parsed, shape-checked model.
#[derive(Debug, Clone)]
pub struct Model {
    pub version: String,
    mean: [f32; FEATURE_COUNT],
    scale: [f32; FEATURE_COUNT],
    w1: Vec<[f32; FEATURE_COUNT]>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
}

impl Model {
    /// Parses and checks a model file's JSON.
    pub fn parse(json: &str) -> Result<Model, ModelError> {
        let f: ModelFile = serde_json::from_str(json).map_err(|e| ModelError::Json(e.to_string()))?;
        if f.features != FEATURE_NAMES {
            return Err(ModelError::Features {
                version: f.version,
                found: f.features,
                expected: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            });
        }
        let shape = |what| ModelError::Shape { version: f.version.clone(), what };
        let arr = |v: &Vec<f32>, what| -> Result<[f32; FEATURE_COUNT], ModelError> {
            v.as_slice().try_into().map_err(|_| shape(what))
        };
        let mean = arr(&f.mean, "mean")?;
        let scale = arr(&f.scale, "scale")?;
        let w1 = f.w1.iter().map(|r| arr(r, "w1")).collect::<Result<Vec<_>, _>>()?;
        if w1.is_empty() || f.b1.len() != w1.len() || f.w2.len() != w1.len() {
            return Err(shape("hidden layer"));
        }
        let all = mean.iter().chain(&scale).chain(w1.iter().flatten()).chain(&f.b1).chain(&f.w2);
        if !all.chain(std::iter::once(&f.b2)).all(|v| v.is_finite()) {
            return Err(shape("a weight (not finite)"));
        }
        Ok(Model { version: f.version, mean, scale, w1, b1: f.b1, w2: f.w2, b2: f.b2 })
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
        for i in 0..FEATURE_COUNT {
            z[i] = (x.0[i] - self.mean[i]) / self.scale[i];
        }
        let mut out = self.b2;
        for ((w, b), v) in self.w1.iter().zip(&self.b1).zip(&self.w2) {
            let h = w.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + b;
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
}
