//! Fuzz the scheme-name and recipe parsers, and the quantizers with whatever parameters a name can
//! carry: any text must give Ok or a typed error, never a panic. A parsed scheme's canonical name
//! must parse back to the same scheme; a parsed recipe must survive its own JSON; a parsed scheme
//! quantizes a small tensor (built from the input bytes) to finite values of the right length, or
//! says why it cannot. The run-time names (activation, KV cache, attention probabilities,
//! methods) likewise round-trip, and their quantizers keep lengths and finiteness.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantscope::quant::activation::{fake_quantize, ActScheme};
use quantscope::quant::attention_probs::{ProbQuantizer, ProbScheme};
use quantscope::quant::experiment::Method;
use quantscope::quant::kv::{fake_quantize_kv, KvScheme};
use quantscope::quant::{quantize, Recipe, Scheme, SchemeKind};

/// A small finite tensor built from the input bytes, with an outlier every 37 values.
fn values_from(data: &[u8], n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let b = data.get(i % data.len().max(1)).copied().unwrap_or(0) as f32;
            (b - 128.0) / 64.0 * if i % 37 == 0 { 100.0 } else { 1.0 }
        })
        .collect()
}

fn runtime_names(text: &str, data: &[u8]) {
    if let Ok(a) = text.parse::<ActScheme>() {
        assert_eq!(a.to_string().parse::<ActScheme>().expect("canonical activation name"), a);
        let mut x = values_from(data, 4 * 64);
        if fake_quantize(&a, &mut x, 4, 64).is_ok() {
            assert!(x.iter().all(|v| v.is_finite()), "{a}");
        }
    }
    if let Ok(kv) = text.parse::<KvScheme>() {
        assert_eq!(kv.to_string().parse::<KvScheme>().expect("canonical KV name"), kv);
        let mut x = values_from(data, 2 * 96);
        if fake_quantize_kv(&kv, &mut x, 2, 96, 32).is_ok() {
            assert!(x.iter().all(|v| v.is_finite()), "{kv}");
        }
    }
    if let Ok(p) = text.parse::<ProbScheme>() {
        assert_eq!(p.to_string().parse::<ProbScheme>().expect("canonical attention name"), p);
        if let Ok(q) = ProbQuantizer::new(p, 2) {
            let mut row: Vec<f32> = values_from(data, 9).iter().map(|v| v.abs().min(1.0)).collect();
            q.quantize_row(1, &mut row);
            assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0), "{p}");
        }
    }
    if let Ok(m) = text.parse::<Method>() {
        assert_eq!(m.to_string().parse::<Method>().expect("canonical method name"), m);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(recipe) = Recipe::from_json(text, "fuzz.json") {
        let again = Recipe::from_json(&recipe.to_json(), "again.json").expect("a recipe's own JSON parses");
        assert_eq!(again, recipe);
        for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.12.ffn_down.weight", "blk.x.y", ""] {
            let _ = recipe.assignment(name, 2);
        }
    }
    runtime_names(text, data);
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
    let values = values_from(data, rows * cols);
    if let Ok(q) = quantize(&scheme, "fuzz", rows, cols, &values) {
        assert_eq!(q.values.len(), rows * cols);
        assert!(q.values.iter().all(|v| v.is_finite()), "{canonical}: non-finite value");
    }
});
