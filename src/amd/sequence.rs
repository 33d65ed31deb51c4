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

use super::model::{indexes_of, sigmoid, ModelError};

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
    members: Vec<MemberFile>,
}

/// One GRU of the ensemble, as PyTorch wrote it.
#[derive(Debug, Clone, Deserialize)]
struct MemberFile {
    /// `3 * hidden` rows (reset, update, new gates) of `inputs.len() * pool` weights.
    w_ih: Vec<Vec<f32>>,
    /// `3 * hidden` rows of `hidden` weights.
    w_hh: Vec<Vec<f32>>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    w_out: Vec<f32>,
    b_out: f32,
}

/// A parsed, shape-checked sequence model: one or more GRUs over the same normalised
/// inputs, whose log-odds are averaged (members trained alike from different seeds).
#[derive(Debug, Clone)]
pub struct SequenceModel {
    pub version: String,
    /// Weight of this model's log-odds in the blend with the perceptron's.
    pub blend: f32,
    /// Index into [`INPUT_NAMES`] of each input the model reads.
    inputs: Vec<usize>,
    mean: Vec<f32>,
    scale: Vec<f32>,
    members: Vec<Gru>,
}

#[derive(Debug, Clone)]
struct Gru {
    hidden: usize,
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
        let shape = |what| ModelError::Shape { version: f.version.clone(), what };
        let inputs = indexes_of(&f.version, &f.inputs, &INPUT_NAMES)?;
        if !(1..=8).contains(&f.pool) || inputs.is_empty() {
            return Err(shape("pool or inputs"));
        }
        let width = inputs.len() * f.pool;
        if f.mean.len() != width || f.scale.len() != width {
            return Err(shape("mean or scale"));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&f.mean) || !finite(&f.scale) || f.scale.contains(&0.0) || !(0.0..=1.0).contains(&f.blend) {
            return Err(shape("mean or scale (not finite, or a zero scale) or the blend"));
        }
        if f.members.is_empty() || f.members.len() > MAX_MEMBERS {
            return Err(shape("members"));
        }
        let members: Vec<Gru> =
            f.members.into_iter().map(|m| Gru::check(m, width).map_err(shape)).collect::<Result<_, _>>()?;
        Ok(SequenceModel { version: f.version, blend: f.blend, inputs, mean: f.mean, scale: f.scale, members })
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
        SequenceState {
            h: self.members.iter().map(|m| vec![0.0; m.hidden]).collect(),
            step: Vec::with_capacity(self.mean.len()),
            logit: None,
        }
    }

    /// Feeds one frame; every `pool` frames each member takes a step.
    pub fn push(&self, state: &mut SequenceState, frame: &FrameInputs) {
        for &i in &self.inputs {
            let k = state.step.len();
            state.step.push((frame.0[i] - self.mean[k]) / self.scale[k]);
        }
        if state.step.len() < self.mean.len() {
            return;
        }
        let sum: f32 = self.members.iter().zip(&mut state.h).map(|(m, h)| m.step(h, &state.step)).sum();
        state.logit = Some(sum / self.members.len() as f32);
        state.step.clear();
    }
}

impl Gru {
    fn check(m: MemberFile, width: usize) -> Result<Gru, &'static str> {
        let hidden = m.w_out.len();
        if hidden == 0 || hidden > MAX_HIDDEN {
            return Err("w_out");
        }
        let matrix = |rows: &Vec<Vec<f32>>, cols: usize, what| {
            if rows.len() != 3 * hidden || rows.iter().any(|r| r.len() != cols) {
                return Err(what);
            }
            Ok(rows.iter().flatten().copied().collect::<Vec<f32>>())
        };
        let w_ih = matrix(&m.w_ih, width, "w_ih")?;
        let w_hh = matrix(&m.w_hh, hidden, "w_hh")?;
        if m.b_ih.len() != 3 * hidden || m.b_hh.len() != 3 * hidden {
            return Err("b_ih or b_hh");
        }
        let all = [&w_ih, &w_hh, &m.b_ih, &m.b_hh, &m.w_out];
        if !all.iter().all(|v| v.iter().all(|x| x.is_finite())) || !m.b_out.is_finite() {
            return Err("a weight (not finite)");
        }
        Ok(Gru { hidden, w_ih, w_hh, b_ih: m.b_ih, b_hh: m.b_hh, w_out: m.w_out, b_out: m.b_out })
    }

    /// One step on the normalised inputs `x`; returns this member's log-odds.
    fn step(&self, h: &mut [f32], x: &[f32]) -> f32 {
        let (n, width) = (self.hidden, x.len());
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
        dot(&self.w_out, h) + self.b_out
    }
}

/// `w · v` over eight running sums, which the compiler can turn into vector instructions
/// (a single running sum must be added in order, so it stays scalar): with five members,
/// 2,958 real-time channels per core against 2,275 with the single sum.
fn dot(w: &[f32], v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (w8, v8) = (w.chunks_exact(8), v.chunks_exact(8));
    let tail: f32 = w8.remainder().iter().zip(v8.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in w8.zip(v8) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The most members a model file may hold.
const MAX_MEMBERS: usize = 16;

/// The largest hidden layer the stack buffers of a member's step take.
const MAX_HIDDEN: usize = 64;

/// One call's recurrent state.
#[derive(Debug, Clone)]
pub struct SequenceState {
    /// Each member's hidden state.
    h: Vec<Vec<f32>>,
    /// The current step's normalised inputs, filled frame by frame.
    step: Vec<f32>,
    logit: Option<f32>,
}

impl SequenceState {
    /// The log-odds of a machine after the last complete step, the members' mean (`None`
    /// before the first).
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
        let json = one_unit_model(&[r#"{"w_ih":[[1],[2],[3]],"w_hh":[[0],[0],[0]],"b_ih":[0,0,0],"b_hh":[0,0,1],"w_out":[2],"b_out":-1}"#]);
        let m = SequenceModel::parse(&json).unwrap();
        let mut s = m.start();
        m.push(&mut s, &pitched());
        let (r, z) = (sigmoid(1.0), sigmoid(2.0));
        let h = (1.0 - z) * (3.0 + r * 1.0f32).tanh();
        assert!((s.logit().unwrap() - (2.0 * h - 1.0)).abs() < 1e-6);
    }

    /// Members step on the same inputs with their own state; the output is their mean
    /// log-odds.
    #[test]
    fn members_log_odds_are_averaged() {
        let a = r#"{"w_ih":[[1],[2],[3]],"w_hh":[[0],[0],[0]],"b_ih":[0,0,0],"b_hh":[0,0,1],"w_out":[2],"b_out":-1}"#;
        let b = r#"{"w_ih":[[0],[0],[0]],"w_hh":[[0],[0],[0]],"b_ih":[0,0,0],"b_hh":[0,0,0],"w_out":[1],"b_out":3}"#;
        let one = |members: &[&str]| {
            let m = SequenceModel::parse(&one_unit_model(members)).unwrap();
            let mut s = m.start();
            m.push(&mut s, &pitched());
            m.push(&mut s, &pitched());
            s.logit().unwrap()
        };
        let (la, lb) = (one(&[a]), one(&[b]));
        assert_eq!(lb, 3.0, "a member with zero weights stays at h = 0");
        assert!((one(&[a, b]) - (la + lb) / 2.0).abs() < 1e-6);
    }

    fn one_unit_model(members: &[&str]) -> String {
        format!(
            r#"{{"version":"t","inputs":["pitched"],"pool":1,"blend":0.5,"mean":[0],"scale":[1],"members":[{}]}}"#,
            members.join(",")
        )
    }

    fn pitched() -> FrameInputs {
        let mut x = [0.0; INPUT_COUNT];
        x[INPUT_NAMES.iter().position(|n| *n == "pitched").unwrap()] = 1.0;
        FrameInputs(x)
    }

    #[test]
    fn unknown_inputs_and_bad_shapes_are_named() {
        let base = |inputs: &str, w_ih: &str, hidden: usize| {
            format!(
                r#"{{"version":"x","inputs":[{inputs}],"pool":1,"blend":0.5,"mean":[0],"scale":[1],"members":[{{"w_ih":{w_ih},
                "w_hh":{},"b_ih":{},"b_hh":{},"w_out":{},"b_out":0}}]}}"#,
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
        let none = r#"{"version":"x","inputs":["tilt"],"pool":1,"blend":0.5,"mean":[0],"scale":[1],"members":[]}"#;
        assert!(matches!(SequenceModel::parse(none), Err(ModelError::Shape { what: "members", .. })));
    }
}
