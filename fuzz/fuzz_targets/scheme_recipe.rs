//! Fuzz the scheme-name and recipe parsers, and the quantizers with whatever parameters a name can
//! carry: any text must give Ok or a typed error, never a panic. A parsed scheme's canonical name
//! must parse back to the same scheme; a parsed recipe must survive its own JSON; a parsed scheme
//! quantizes a small tensor (built from the input bytes) to finite values of the right length, or
//! says why it cannot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantscope::quant::{quantize, Recipe, Scheme, SchemeKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(recipe) = Recipe::from_json(text, "fuzz.json") {
        let again = Recipe::from_json(&recipe.to_json(), "again.json").expect("a recipe's own JSON parses");
        assert_eq!(again, recipe);
        for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.12.ffn_down.weight", "blk.x.y", ""] {
            let _ = recipe.assignment(name, 2);
        }
    }
    let Ok(scheme) = text.parse::<Scheme>() else { return };
    let canonical = scheme.to_string();
    assert_eq!(canonical.parse::<Scheme>().expect("a canonical name parses"), scheme, "{canonical}");
    // Keep each run short: BCQ's cost grows with its rounds.
    if let SchemeKind::Bcq { rounds, .. } = scheme.kind {
        if rounds > 20 {
            return;
        }
    }
    let (rows, cols) = (3, 96);
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let b = data.get(i % data.len().max(1)).copied().unwrap_or(0) as f32;
            (b - 128.0) / 64.0 * if i % 37 == 0 { 100.0 } else { 1.0 }
        })
        .collect();
    if let Ok(q) = quantize(&scheme, "fuzz", rows, cols, &values) {
        assert_eq!(q.values.len(), rows * cols);
        assert!(q.values.iter().all(|v| v.is_finite()), "{canonical}: non-finite value");
    }
});
