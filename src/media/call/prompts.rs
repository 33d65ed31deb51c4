//! The prompts the dialler plays, loaded once from `media.prompts`.

use std::path::Path;
use std::sync::Arc;

use super::MediaCallError;
use crate::config::Config;
use crate::media::player::{tone, Prompt};

/// Every prompt, shared between calls.
#[derive(Debug, Clone)]
pub struct Prompts {
    pub please_hold: Arc<Prompt>,
    pub apology: Arc<Prompt>,
    pub hold_music: Arc<Prompt>,
    pub callback_offer: Arc<Prompt>,
    pub callback_confirm: Arc<Prompt>,
    /// "You already have a call back booked" (inbound offer, duplicate).
    pub callback_exists: Arc<Prompt>,
    /// "Please enter your phone number …" (inbound, caller ID unusable).
    pub enter_number: Arc<Prompt>,
    /// "You entered", then the digits, then "press 1 to confirm".
    pub you_entered: Arc<Prompt>,
    pub press_1_to_confirm: Arc<Prompt>,
    /// "zero" … "nine", for reading a number back.
    pub digits: [Arc<Prompt>; 10],
    /// 480 + 620 Hz, 500 ms on / 500 ms off (North American busy); play it looped.
    pub busy_tone: Arc<Prompt>,
    /// 440 + 480 Hz, 2 s on / 4 s off (North American ring-back); play it looped.
    pub ringback: Arc<Prompt>,
}

impl Prompts {
    /// Reads `please-hold.wav`, `apology.wav`, `hold-music.wav`,
    /// `callback-offer.wav` and `callback-confirm.wav` from `media.prompts`.
    /// A missing file is replaced by a tone (logged); a file that exists but
    /// cannot be read is an error, so a broken deployment is noticed.
    pub fn load(cfg: &Config) -> Result<Prompts, MediaCallError> {
        Self::load_dir(&cfg.media.prompts)
    }

    pub fn load_dir(dir: &Path) -> Result<Prompts, MediaCallError> {
        let one = |name: &'static str, file: &str, fallback: fn() -> Prompt| -> Result<Arc<Prompt>, MediaCallError> {
            let path = dir.join(file);
            if !path.exists() {
                tracing::warn!(prompt = name, path = %path.display(), "prompt file missing; a tone plays instead");
                return Ok(Arc::new(fallback()));
            }
            Prompt::from_wav(&path).map(Arc::new).map_err(|source| MediaCallError::Prompt { name, source })
        };
        Ok(Prompts {
            // Fallbacks: distinct, unobtrusive tones, so a missing file is audible but harmless.
            please_hold: one("please_hold", "please-hold.wav", || tone(&[440.0], 300, 200, 1500))?,
            apology: one("apology", "apology.wav", || tone(&[400.0], 200, 200, 1200))?,
            hold_music: one("hold_music", "hold-music.wav", || tone(&[440.0, 554.0], 1000, 2000, 3000))?,
            callback_offer: one("callback_offer", "callback-offer.wav", || tone(&[660.0], 300, 200, 1500))?,
            callback_confirm: one("callback_confirm", "callback-confirm.wav", || tone(&[880.0], 150, 100, 750))?,
            callback_exists: one("callback_exists", "callback-exists.wav", || tone(&[880.0, 660.0], 150, 100, 750))?,
            enter_number: one("enter_number", "enter-number.wav", || tone(&[660.0], 150, 100, 500))?,
            you_entered: one("you_entered", "you-entered.wav", || tone(&[550.0], 150, 100, 500))?,
            press_1_to_confirm: one("press_1_to_confirm", "press-1-to-confirm.wav", || tone(&[660.0], 150, 100, 500))?,
            digits: digits(&one)?,
            busy_tone: Arc::new(busy_tone()),
            ringback: Arc::new(tone(&[440.0, 480.0], 2000, 4000, 6000)),
        })
    }
}

type Loader<'a> = dyn Fn(&'static str, &str, fn() -> Prompt) -> Result<Arc<Prompt>, MediaCallError> + 'a;

/// `digit-0.wav` … `digit-9.wav`; a missing one is a short beep.
fn digits(one: &Loader<'_>) -> Result<[Arc<Prompt>; 10], MediaCallError> {
    const NAMES: [&str; 10] = ["digit_0", "digit_1", "digit_2", "digit_3", "digit_4", "digit_5", "digit_6", "digit_7", "digit_8", "digit_9"];
    let mut out = Vec::with_capacity(10);
    for (i, name) in NAMES.iter().enumerate() {
        out.push(one(name, &format!("digit-{i}.wav"), || tone(&[700.0], 120, 80, 200))?);
    }
    Ok(out.try_into().expect("ten digits"))
}

/// One busy-tone cycle (loop it).
pub fn busy_tone() -> Prompt {
    tone(&[480.0, 620.0], 500, 500, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_load_and_missing_ones_become_tones() {
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        std::fs::copy(src.join("apology.wav"), dir.path().join("apology.wav")).unwrap();
        let p = Prompts::load_dir(dir.path()).unwrap();
        let from_file = Prompt::from_wav(&src.join("apology.wav")).unwrap();
        assert_eq!(p.apology.samples(), from_file.samples());
        assert_eq!(p.please_hold.duration(), std::time::Duration::from_millis(1500), "fallback tone");
        assert_eq!(p.busy_tone.duration(), std::time::Duration::from_secs(1));

        std::fs::write(dir.path().join("hold-music.wav"), b"not a wav").unwrap();
        assert!(matches!(Prompts::load_dir(dir.path()), Err(MediaCallError::Prompt { name: "hold_music", .. })));
    }

    #[test]
    fn the_shipped_defaults_all_load() {
        let cfg = Config::load(None).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let p = Prompts::load_dir(&dir).unwrap();
        for (name, file) in [("please-hold", &p.please_hold), ("hold-music", &p.hold_music), ("callback-offer", &p.callback_offer), ("callback-confirm", &p.callback_confirm)] {
            let want = Prompt::from_wav(&dir.join(format!("{name}.wav"))).unwrap();
            assert_eq!(file.samples(), want.samples(), "{name}");
        }
        assert_eq!(cfg.media.prompts, Path::new("prompts"));
    }
}
