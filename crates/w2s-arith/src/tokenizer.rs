//! The word-level tokenizer of the arithmetic task, built with the `tokenizers` crate and saved
//! as an ordinary `tokenizer.json`, so the synthetic models load like any HF checkpoint.
//!
//! A piece is a word or a single symbol, each with or without one leading space, a single bare
//! digit, or one whitespace character; so numbers are read digit by digit (small models learn
//! arithmetic far better that way than with multi-digit tokens), every digit has one id wherever
//! it stands (a space before a number is a piece of its own: with `" 8"` and `"8"` as two ids, a
//! small model learns each digit fact twice, and the first pretrained bases could not add 2 and
//! 6), and decoding is the exact concatenation of the pieces (the `Fuse` decoder). Any text of the task's templates, the
//! `Question:`/`Answer:` prompts and the calculator annotations encodes without an unknown piece.
//!
//! Ids: `<unk>` 0, `<s>` 1 (BOS), `</s>` 2 (EOS), `<pad>` 3, then the pieces. The file's
//! post-processor puts BOS before every text, as a Llama-2 `tokenizer.json` does, so every
//! reader that follows the tokenizer's own rule (w2s, transformers) adds it.

use std::io::Write;
use std::path::Path;

use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::render::{NAMES, OBJECTS, TEMPLATE_WORDS};
use crate::error::{ArithError, Result};
use w2s_data::atomic::write_atomic;

/// The special tokens, in id order.
pub const SPECIALS: [&str; 4] = ["<unk>", "<s>", "</s>", "<pad>"];
/// Id of `<s>`.
pub const BOS_ID: u32 = 1;
/// Id of `</s>`.
pub const EOS_ID: u32 = 2;
/// Id of `<pad>`.
pub const PAD_ID: u32 = 3;

const PIECES: &str = r" ?[A-Za-z]+|[0-9]| ?[^A-Za-z0-9\s]|\s";

/// Every piece of the vocabulary, specials first; the id of a piece is its index.
pub fn vocabulary() -> Vec<String> {
    let mut pieces: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    let words = TEMPLATE_WORDS
        .split_whitespace()
        .chain(NAMES)
        .chain(OBJECTS)
        .map(String::from);
    let symbols = (33u8..127)
        .map(char::from)
        .filter(|c| !c.is_ascii_alphanumeric())
        .map(String::from);
    let mut seen = std::collections::BTreeSet::new();
    for piece in words.chain(symbols) {
        for spaced in [piece.clone(), format!(" {piece}")] {
            if seen.insert(spaced.clone()) {
                pieces.push(spaced);
            }
        }
    }
    pieces.extend(('0'..='9').map(String::from));
    pieces.extend(["\n".to_string(), " ".to_string()]);
    pieces
}

/// Builds the tokenizer.
///
/// # Errors
/// [`ArithError::Invalid`] if the `tokenizers` crate refuses a component (a bug, not user input).
pub fn build() -> Result<Tokenizer> {
    let vocab: serde_json::Map<String, serde_json::Value> = vocabulary()
        .into_iter()
        .enumerate()
        .map(|(id, piece)| (piece, serde_json::Value::from(id)))
        .collect();
    let fail =
        |e: &dyn std::fmt::Display| ArithError::Invalid(format!("arithmetic tokenizer: {e}"));
    // WordLevel deserializes from borrowed text only, hence the round trip through a string.
    let model_json = serde_json::json!({
        "type": "WordLevel",
        "vocab": vocab,
        "unk_token": SPECIALS[0],
    })
    .to_string();
    let model: WordLevel = serde_json::from_str(&model_json).map_err(|e| fail(&e))?;
    let split = Split::new(
        SplitPattern::Regex(PIECES.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| fail(&e))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(split));
    tokenizer.with_decoder(Some(Fuse::new()));
    // BOS starts every text, said in the file itself, so w2s and transformers both add it by
    // the tokenizer's own rule (as a Llama-2 tokenizer.json does); EOS is left to the trainers.
    let bos = SPECIALS[BOS_ID as usize];
    let post_processor = TemplateProcessing::builder()
        .try_single(format!("{bos} $A"))
        .and_then(|b| b.try_pair(format!("{bos} $A $B:1")))
        .map_err(|e| fail(&e))?
        .special_tokens(vec![(bos, BOS_ID)])
        .build()
        .map_err(|e| fail(&e))?;
    tokenizer.with_post_processor(Some(post_processor));
    let specials: Vec<AddedToken> = SPECIALS
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// Builds the tokenizer and writes it to `path` (atomically).
///
/// # Errors
/// As [`build`], and I/O errors naming the file.
pub fn write(path: &Path) -> Result<()> {
    let json = build()?
        .to_string(true)
        .map_err(|e| ArithError::Invalid(format!("arithmetic tokenizer: {e}")))?;
    Ok(write_atomic(path, |w| w.write_all(json.as_bytes()))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, Family, Op, Surface};
    use w2s_eval::prompt::{few_shot, zero_shot, Demonstration};

    #[test]
    fn task_text_round_trips_without_unknown_pieces() -> Result<()> {
        let tokenizer = build()?;
        let mut family = Family::target(4);
        family.ops = Op::ALL.to_vec();
        let mut problems = generate(&family, 100, 5)?;
        family.surface = Surface::Instructions;
        problems.extend(generate(&family, 100, 6)?);
        for p in &problems {
            let demo = Demonstration {
                question: p.question(),
                answer: p.solution(),
            };
            let text = few_shot(&[demo], &p.question()) + &p.solution();
            let ids = tokenizer
                .encode(text.as_str(), false)
                .map_err(|e| ArithError::Invalid(e.to_string()))?;
            assert!(!ids.get_ids().contains(&0), "unknown piece in {text:?}");
            let back = tokenizer
                .decode(ids.get_ids(), true)
                .map_err(|e| ArithError::Invalid(e.to_string()))?;
            assert_eq!(back, text);
        }
        Ok(())
    }

    #[test]
    fn specials_have_fixed_ids_and_decode_away() -> Result<()> {
        let tokenizer = build()?;
        assert_eq!(tokenizer.token_to_id("<s>"), Some(BOS_ID));
        assert_eq!(tokenizer.token_to_id("</s>"), Some(EOS_ID));
        assert_eq!(tokenizer.token_to_id("<pad>"), Some(PAD_ID));
        let ids = tokenizer
            .encode(zero_shot("Start with 7.").as_str(), false)
            .map_err(|e| ArithError::Invalid(e.to_string()))?;
        let mut with_eos = ids.get_ids().to_vec();
        with_eos.push(EOS_ID);
        let text = tokenizer
            .decode(&with_eos, true)
            .map_err(|e| ArithError::Invalid(e.to_string()))?;
        assert_eq!(text, "Question: Start with 7.\nAnswer:");
        Ok(())
    }

    #[test]
    fn the_file_adds_bos_first_and_nothing_else() -> Result<()> {
        let tokenizer = build()?;
        let encode = |special: bool| -> Result<Vec<u32>> {
            Ok(tokenizer
                .encode("Start with 7.", special)
                .map_err(|e| ArithError::Invalid(e.to_string()))?
                .get_ids()
                .to_vec())
        };
        let plain = encode(false)?;
        assert_eq!(encode(true)?, [&[BOS_ID][..], &plain].concat());
        Ok(())
    }

    #[test]
    fn a_digit_has_one_id_wherever_it_stands() -> Result<()> {
        let tokenizer = build()?;
        let ids = |text: &str| -> Result<Vec<u32>> {
            Ok(tokenizer
                .encode(text, false)
                .map_err(|e| ArithError::Invalid(e.to_string()))?
                .get_ids()
                .to_vec())
        };
        let id = |piece: &str| tokenizer.token_to_id(piece).unwrap_or(u32::MAX);
        assert_eq!(ids(" 8")?, [id(" "), id("8")]);
        assert_eq!(ids("= 18")?, [id("="), id(" "), id("1"), id("8")]);
        assert_eq!(ids("<<8*2=16>>8")?[2], id("8"));
        assert_eq!(tokenizer.token_to_id(" 8"), None);
        Ok(())
    }

    #[test]
    fn the_file_loads_back() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| w2s_data::DataError::io(Path::new("tmp"), e))?;
        let path = dir.path().join("tokenizer.json");
        write(&path)?;
        let back = Tokenizer::from_file(&path).map_err(|e| ArithError::Invalid(e.to_string()))?;
        assert_eq!(back.get_vocab_size(true), vocabulary().len());
        Ok(())
    }
}
