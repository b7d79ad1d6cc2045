//! Checks on text people give us (product names, customer ids) that other people will read:
//! characters that render deceptively are refused, so a name cannot display as something it
//! is not (a bidi override flipping "kim.exe" into "exe.mik", an invisible zero-width joiner
//! making two different ids look the same).

/// The first character of `text` that renders deceptively, if any: control characters,
/// bidirectional formatting (embeddings, overrides, isolates, marks) and zero-width or
/// invisible formatting characters.
pub fn deceptive_char(text: &str) -> Option<char> {
    text.chars().find(|c| is_deceptive(*c))
}

fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                 // Arabic letter mark
            | '\u{200B}'..='\u{200F}'  // zero-width space/non-joiner/joiner, LRM, RLM
            | '\u{202A}'..='\u{202E}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'  // bidi isolates
            | '\u{FEFF}'               // zero-width no-break space (BOM)
            | '\u{00AD}'               // soft hyphen
            | '\u{180E}'               // Mongolian vowel separator
            | '\u{FFF9}'..='\u{FFFB}'  // interlinear annotations
        )
}

/// Why `text` is refused, naming the character by its code point, or `None` when it is fine.
pub fn explain_deceptive(text: &str) -> Option<String> {
    deceptive_char(text).map(|c| {
        format!(
            "must not contain U+{:04X} (control, bidirectional or invisible characters render deceptively)",
            u32::from(c)
        )
    })
}

/// `text` with every deceptive character written out as `\u{XXXX}`: what a message shows
/// when it interpolates a value that was stored before these checks, or came from elsewhere.
pub fn escape_deceptive(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if is_deceptive(c) {
            escaped.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_zero_width_and_control_characters_are_refused() {
        for bad in [
            "kim\u{202E}exe",
            "ki\u{200B}m",
            "k\u{200D}im",
            "\u{2066}kim\u{2069}",
            "kim\u{FEFF}",
            "kim\n",
            "a\u{0007}",
        ] {
            assert!(deceptive_char(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for good in [
            "Phone",
            "커피 머신",
            "café au lait",
            "Ткань",
            "שלום",
            "ＴＶ 55\"",
        ] {
            assert_eq!(deceptive_char(good), None, "{good:?}");
        }
        assert!(explain_deceptive("a\u{202E}b").unwrap().contains("U+202E"));
    }

    #[test]
    fn escaping_writes_deceptive_characters_out() {
        assert_eq!(escape_deceptive("kim\u{202E}exe"), "kim\\u{202E}exe");
        assert_eq!(escape_deceptive("커피\n"), "커피\\u{000A}");
        assert_eq!(escape_deceptive("Phone"), "Phone");
    }
}
