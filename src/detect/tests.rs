//! One row per transcript: (transcript, requested, when, reason, confidence).

use super::detect;

type Row = (&'static str, bool, Option<&'static str>, Option<&'static str>, f64);

const ROWS: &[Row] = &[
    // Clear asks by the customer.
    ("Customer: Can you call me back tomorrow at 5 pm?", true, Some("tomorrow at 5 pm"), None, 0.9),
    ("C: call me back in 10 minutes", true, Some("in 10 minutes"), None, 0.9),
    ("Please call me tomorrow morning", true, Some("tomorrow morning"), None, 0.9),
    ("I'm driving, call me back later", true, None, Some("driving"), 0.9),
    ("Customer: I'm in a meeting, call me after 3pm", true, Some("after 3pm"), Some("in a meeting"), 0.9),
    ("Customer: busy right now, call me tonight", true, Some("tonight"), Some("busy"), 0.9),
    ("C: Could you ring me on Monday?", true, Some("Monday"), None, 0.9),
    ("give me a call this evening", true, Some("this evening"), None, 0.9),
    ("Customer: call back at 4:30", true, Some("at 4:30"), None, 0.9),
    ("Customer: try again in an hour", true, Some("in an hour"), None, 0.9),
    ("Customer: I'm at work, call me at 6", true, Some("at 6"), Some("at work"), 0.9),
    ("C: callback please, Friday afternoon", true, Some("Friday afternoon"), None, 0.9),
    ("Customer: call me next week", true, Some("next week"), None, 0.9),
    ("Customer: I can't talk now. Call me back.", true, None, Some("not free right now"), 0.9),
    ("Customer: not free now, call me in 2 hours", true, Some("in 2 hours"), Some("not free right now"), 0.9),
    ("Customer: travelling today, call again on Sunday", true, Some("today"), Some("travelling"), 0.9),
    ("call me at 9 am tomorrow", true, Some("at 9 am tomorrow"), None, 0.9),
    ("Agent: Is this a good time?\nCustomer: No, call me back in the evening", true, Some("in the evening"), None, 0.9),
    ("A: Hello sir\nC: I'm sleeping, call me later", true, None, Some("sleeping"), 0.9),
    ("Customer: give me a ring tomorrow", true, Some("tomorrow"), None, 0.9),
    // Hinglish asks.
    ("kal subah call karna", true, Some("kal subah"), None, 0.9),
    ("abhi busy hoon, shaam ko baat karte hain", true, Some("shaam"), Some("busy"), 0.9),
    ("Customer: meeting mein hoon, 5 baje call karna", true, Some("5 baje"), Some("in a meeting"), 0.9),
    ("C: gaadi chala raha hoon, thodi der baad call kariye", true, Some("thodi der baad"), Some("driving"), 0.9),
    ("Customer: aaj raat 8 baje phone karna", true, Some("aaj raat 8 baje"), None, 0.9),
    ("C: parso call kijiye", true, Some("parso"), None, 0.9),
    ("Customer: abhi free nahi hoon, kal call karna", true, Some("kal"), Some("not free right now"), 0.9),
    ("Customer: office mein hoon, dopahar ko call kar lena", true, Some("dopahar"), Some("at work"), 0.9),
    ("Customer: 2 ghante baad call karna", true, Some("2 ghante baad"), None, 0.9),
    ("C: kal baat karenge", true, Some("kal"), None, 0.9),
    // Promises by the agent.
    ("Agent: I'll call you back tomorrow at 10.\nCustomer: OK", true, Some("tomorrow at 10"), None, 0.8),
    ("A: We will call you on Monday morning\nC: fine", true, Some("Monday morning"), None, 0.8),
    ("Agent: No problem, I will call you back in an hour", true, Some("in an hour"), None, 0.8),
    ("Customer: I'm busy\nAgent: I'll call you back this evening", true, Some("this evening"), Some("busy"), 0.8),
    ("Customer: tomorrow works\nAgent: great, we'll call you then", true, Some("tomorrow"), None, 0.8),
    ("Agent: main call karunga kal subah\nCustomer: theek hai", true, Some("kal subah"), None, 0.8),
    ("A: hum call karenge shaam ko\nC: ok", true, Some("shaam"), None, 0.8),
    ("Agent: I'll give you a call after lunch\nCustomer: sure", true, Some("after lunch"), None, 0.8),
    ("Agent: We'll call back later\nCustomer: okay", true, None, None, 0.8),
    ("Agent: I'll ring you at 5 pm\nCustomer: thanks", true, Some("at 5 pm"), None, 0.8),
    // Wishes to continue without the word call.
    ("Customer: let's talk later", true, None, None, 0.5),
    ("Customer: can we speak tomorrow?", true, Some("tomorrow"), None, 0.5),
    ("C: not now please, I'm driving", true, None, Some("driving"), 0.5),
    ("Customer: baad mein baat karte", true, None, None, 0.9),
    // Implied: a reason and time words, nothing else.
    ("Customer: I'm busy until 6 pm", true, Some("6 pm"), Some("busy"), 0.3),
    ("C: in a meeting till the evening", true, Some("the evening"), Some("in a meeting"), 0.3),
    ("Customer: driving now, free tomorrow", true, Some("tomorrow"), Some("driving"), 0.3),
    ("Customer: abhi busy hoon, shaam ko free hoon", true, Some("shaam"), Some("busy"), 0.3),
    // Refusals.
    ("Customer: don't call me again", false, None, None, 0.0),
    ("Customer: Do not call this number. Call me never.", false, None, None, 0.0),
    ("C: I'm not interested, stop calling", false, None, None, 0.0),
    ("Customer: not interested, don't call me tomorrow either", false, None, None, 0.0),
    ("Customer: dobara call mat karna", false, None, None, 0.0),
    ("C: mujhe interest nahi hai", false, None, None, 0.0),
    ("Customer: please remove my number", false, None, None, 0.0),
    ("Agent: can we call you back?\nCustomer: no need to call", false, None, None, 0.0),
    // Time words without a callback request.
    ("Customer: my order arrived yesterday and the box was damaged", false, None, None, 0.0),
    ("Customer: the delivery is tomorrow at 5 pm, right?", false, None, None, 0.0),
    ("Customer: I paid on Monday morning", false, None, None, 0.0),
    ("C: kal mera order aaya tha", false, None, None, 0.0),
    ("Customer: I work night shifts on the weekend", false, None, None, 0.0),
    ("Agent: your appointment is next week\nCustomer: thanks", false, None, None, 0.0),
    ("Customer: I'm busy", false, None, None, 0.0),
    ("", false, None, None, 0.0),
    ("Customer: I have 2 kids and a dog", false, None, None, 0.0),
    ("Agent: Thank you for calling\nCustomer: bye", false, None, None, 0.0),
];

#[test]
fn table() {
    assert!(ROWS.len() >= 60, "{} rows", ROWS.len());
    let mut failures = Vec::new();
    for (text, requested, when, reason, confidence) in ROWS {
        let got = detect(text);
        if got.requested != *requested
            || got.when.as_deref() != *when
            || got.reason != *reason
            || (got.confidence - confidence).abs() > 1e-9
        {
            failures.push(format!("{text:?}: got {got:?}, want {requested} {when:?} {reason:?} {confidence}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows fail:\n{}", failures.len(), ROWS.len(), failures.join("\n"));
}
