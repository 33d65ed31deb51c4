//! The second learned part of the decision: a small recurrent network (one GRU layer and
//! a logistic output) that reads the line frame by frame from the first sample, where the
//! perceptron of [`super::model`] reads summaries of the first seconds. The GRU sees the
//! order of things the summaries lose: how the level rises into the first word, how the
//! spectrum and pitch move through it, what the line did just before it.
//!
//! Its inputs are [`FrameInputs`], measured per 20 ms frame; `pool` adjacent frames are
//! concatenated into one step (so the network steps every 40 ms with `pool` = 2). The
//! detector blends the two models' log-odds: `(1 - blend) * mlp + blend * gru`.
//!
//! The weights are data: `src/amd/sequence_model.json`, written by
//! `python3 test-media/train_amd_sequence.py` from the corpora's `train` splits only,
//! embedded in the binary and parsed once. The file names its version, its inputs (each
//! one of [`INPUT_NAMES`], checked when parsed) and the command that made it. The
//! equations are PyTorch's `nn.GRU`, so the trainer's weights are used as they are:
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h ← (1 − z) ⊙ n + z ⊙ h
//! ```

use std::sync::OnceLock;

use serde::Deserialize;

use super::model::{sigmoid, ModelError};

/// The sequence model's JSON (see the module docs).
pub const SEQUENCE_MODEL_JSON: &str = include_str!("sequence_model.json");

/// Number of per-frame inputs the detector measures.
pub const INPUT_COUNT: usize = 17;

/// The per-frame inputs, in [`FrameInputs`] order.
pub const INPUT_NAMES: [&str; INPUT_COUNT] = [
    "level_over_floor_db",
    "level_dbfs",
    "ringback",
    "zero_crossings",
    "tilt",
    "periodicity",
    "pitch_st",
    "pitched",
    "band0_db",
    "band1_db",
    "band2_db",
    "band3_db",
    "band4_db",
    "band5_db",
    "band6_db",
    "band7_db",
    "ringback_bursts",
];

/// One frame's inputs (see [`INPUT_NAMES`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInputs(pub [f32; INPUT_COUNT]);

#[derive(Debug, Clone, Deserialize)]
struct SequenceFile {
    version: String,
    inputs: Vec<String>,
    pool: usize,
    blend: f32,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `3 * hidden` rows (reset, update, new gates) of `inputs.len() * pool` weights.
    w_ih: Vec<Vec<f32>>,
    /// `3 * hidden` rows of `hidden` weights.
    w_hh: Vec<Vec<f32>>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    w_out: Vec<f32>,
    b_out: f32,
}

/// A parsed, shape-checked sequence model.
#[derive(Debug, Clone)]
pub struct SequenceModel {
    pub version: String,
    /// Weight of this model's log-odds in the blend with the perceptron's.
    pub blend: f32,
    /// Index into [`INPUT_NAMES`] of each input the model reads.
    inputs: Vec<usize>,
    hidden: usize,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// Row-major `3 * hidden` × `inputs.len() * pool`.
    w_ih: Vec<f32>,
    /// Row-major `3 * hidden` × `hidden`.
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    w_out: Vec<f32>,
    b_out: f32,
}

impl SequenceModel {
    /// Parses and checks a sequence model file's JSON.
    pub fn parse(json: &str) -> Result<SequenceModel, ModelError> {
        let f: SequenceFile = serde_json::from_str(json).map_err(|e| ModelError::Json(e.to_string()))?;
        let version = f.version.clone();
        let shape = |what| ModelError::Shape { version: version.clone(), what };
        let inputs =
            f.inputs.iter().map(|n| INPUT_NAMES.iter().position(|m| m == n)).collect::<Option<Vec<_>>>().ok_or_else(
                || ModelError::Features {
                    version: f.version.clone(),
                    found: f.inputs.clone(),
                    expected: INPUT_NAMES.iter().map(|s| s.to_string()).collect(),
                },
            )?;
        if !(1..=8).contains(&f.pool) || inputs.is_empty() {
            return Err(shape("pool or inputs"));
        }
        let width = inputs.len() * f.pool;
        let hidden = f.w_out.len();
        if hidden == 0 || hidden > MAX_HIDDEN || f.mean.len() != width || f.scale.len() != width {
            return Err(shape("mean, scale or w_out"));
        }
        let matrix = |rows: &Vec<Vec<f32>>, cols: usize, what| -> Result<Vec<f32>, ModelError> {
            if rows.len() != 3 * hidden || rows.iter().any(|r| r.len() != cols) {
                return Err(shape(what));
            }
            Ok(rows.iter().flatten().copied().collect())
        };
        let w_ih = matrix(&f.w_ih, width, "w_ih")?;
        let w_hh = matrix(&f.w_hh, hidden, "w_hh")?;
        if f.b_ih.len() != 3 * hidden || f.b_hh.len() != 3 * hidden {
            return Err(shape("b_ih or b_hh"));
        }
        let all = [&f.mean, &f.scale, &w_ih, &w_hh, &f.b_ih, &f.b_hh, &f.w_out];
        let finite = all.iter().all(|v| v.iter().all(|x| x.is_finite())) && f.b_out.is_finite();
        if !finite || f.scale.contains(&0.0) || !(0.0..=1.0).contains(&f.blend) {
            return Err(shape("a weight (not finite), a zero scale or the blend"));
        }
        Ok(SequenceModel {
            version: f.version,
            blend: f.blend,
            inputs,
            hidden,
            mean: f.mean,
            scale: f.scale,
            w_ih,
            w_hh,
            b_ih: f.b_ih,
            b_hh: f.b_hh,
            w_out: f.w_out,
            b_out: f.b_out,
        })
    }

    /// The built-in sequence model, parsed on first use.
    pub fn builtin() -> &'static SequenceModel {
        static MODEL: OnceLock<SequenceModel> = OnceLock::new();
        // The embedded file is checked by a unit test, so this cannot fail in a build
        // that passed its tests.
        MODEL.get_or_init(|| SequenceModel::parse(SEQUENCE_MODEL_JSON).expect("src/amd/sequence_model.json is valid"))
    }

    /// A fresh state for one call.
    pub fn start(&self) -> SequenceState {
        SequenceState { h: vec![0.0; self.hidden], step: Vec::with_capacity(self.mean.len()), logit: None }
    }

    /// Feeds one frame; every `pool` frames the network takes a step.
    pub fn push(&self, state: &mut SequenceState, frame: &FrameInputs) {
        for &i in &self.inputs {
            let k = state.step.len();
            state.step.push((frame.0[i] - self.mean[k]) / self.scale[k]);
        }
        if state.step.len() < self.mean.len() {
            return;
        }
        let (h, x, n) = (&mut state.h, &state.step, self.hidden);
        let width = x.len();
        let dot = |w: &[f32], v: &[f32]| w.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        // Gate pre-activations from the input and from the state, before h changes.
        let mut gi = [0.0f32; 3 * MAX_HIDDEN];
        let mut gh = [0.0f32; 3 * MAX_HIDDEN];
        for g in 0..3 * n {
            gi[g] = dot(&self.w_ih[g * width..(g + 1) * width], x) + self.b_ih[g];
            gh[g] = dot(&self.w_hh[g * n..(g + 1) * n], h) + self.b_hh[g];
        }
        for j in 0..n {
            let r = sigmoid(gi[j] + gh[j]);
            let z = sigmoid(gi[n + j] + gh[n + j]);
            let c = (gi[2 * n + j] + r * gh[2 * n + j]).tanh();
            h[j] = (1.0 - z) * c + z * h[j];
        }
        state.logit = Some(dot(&self.w_out, h) + self.b_out);
        state.step.clear();
    }
}

/// The largest hidden layer the stack buffers of [`SequenceModel::push`] take.
const MAX_HIDDEN: usize = 64;

/// One call's recurrent state.
#[derive(Debug, Clone)]
pub struct SequenceState {
    h: Vec<f32>,
    /// The current step's normalised inputs, filled frame by frame.
    step: Vec<f32>,
    logit: Option<f32>,
}

impl SequenceState {
    /// The log-odds of a machine after the last complete step (`None` before the first).
    pub fn logit(&self) -> Option<f32> {
        self.logit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sequence_model_parses_and_steps() {
        let m = SequenceModel::parse(SEQUENCE_MODEL_JSON).unwrap();
        assert!(!m.version.is_empty());
        let mut s = m.start();
        let pool: usize =
            serde_json::from_str::<serde_json::Value>(SEQUENCE_MODEL_JSON).unwrap()["pool"].as_u64().unwrap() as usize;
        for i in 0..pool {
            assert_eq!(s.logit(), None, "no output before a whole step ({i} frames)");
            m.push(&mut s, &FrameInputs([0.0; INPUT_COUNT]));
        }
        assert!(s.logit().unwrap().is_finite());
    }

    /// One step of a 1-unit GRU worked by hand against the equations in the module docs.
    #[test]
    fn one_step_matches_the_equations() {
        let json = r#"{"version":"t","inputs":["pitched"],"pool":1,"blend":0.5,"mean":[0],"scale":[1],
            "w_ih":[[1],[2],[3]],"w_hh":[[0],[0],[0]],"b_ih":[0,0,0],"b_hh":[0,0,1],"w_out":[2],"b_out":-1}"#;
        let m = SequenceModel::parse(json).unwrap();
        let mut s = m.start();
        let mut x = [0.0; INPUT_COUNT];
        x[7] = 1.0;
        m.push(&mut s, &FrameInputs(x));
        let (r, z) = (sigmoid(1.0), sigmoid(2.0));
        let h = (1.0 - z) * (3.0 + r * 1.0f32).tanh();
        assert!((s.logit().unwrap() - (2.0 * h - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn unknown_inputs_and_bad_shapes_are_named() {
        let base = |inputs: &str, w_ih: &str, hidden: usize| {
            format!(
                r#"{{"version":"x","inputs":[{inputs}],"pool":1,"blend":0.5,"mean":[0],"scale":[1],"w_ih":{w_ih},
                "w_hh":{},"b_ih":{},"b_hh":{},"w_out":{},"b_out":0}}"#,
                serde_json::to_string(&vec![vec![0.0; hidden]; 3 * hidden]).unwrap(),
                serde_json::to_string(&vec![0.0; 3 * hidden]).unwrap(),
                serde_json::to_string(&vec![0.0; 3 * hidden]).unwrap(),
                serde_json::to_string(&vec![0.0; hidden]).unwrap(),
            )
        };
        let e = SequenceModel::parse(&base(r#""nope""#, "[[0],[0],[0]]", 1));
        assert!(matches!(e, Err(ModelError::Features { .. })), "{e:?}");
        let e = SequenceModel::parse(&base(r#""tilt""#, "[[0],[0]]", 1));
        assert!(matches!(e, Err(ModelError::Shape { what: "w_ih", .. })), "{e:?}");
        assert!(SequenceModel::parse(&base(r#""tilt""#, "[[0],[0],[0]]", 1)).is_ok());
        assert!(matches!(SequenceModel::parse("{"), Err(ModelError::Json(_))));
    }
}
