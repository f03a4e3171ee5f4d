//! Names that exercise the user-directory index: plain Latin, mixed case,
//! other scripts, composed and decomposed accents, ligatures and full-width
//! forms that NFKC rewrites, mathematical letters, emoji, very long names.

use rand::Rng;

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara", "zoe",
    "amir", "bea", "chen", "dmitri", "elena", "farah", "goran", "hana", "ines", "jonas", "kofi",
    "lena", "mateo", "nadia", "oskar", "priya", "quinn", "rosa", "sven", "tariq", "uma",
];
const LAST: &[&str] = &[
    "smith", "jones", "garcia", "muller", "rossi", "kowalski", "novak", "silva", "tanaka", "kim",
    "nguyen", "okafor", "haddad", "larsen", "dubois", "ivanova", "costa", "fischer", "moreau",
    "weber", "santos", "yilmaz", "berg", "khan",
];

/// Hard display names, one per kind; `EXOTIC_KINDS` names them for tests.
const EXOTIC: &[(&str, &[&str])] = &[
    (
        "mixed_case",
        &[
            "aLiCe SmItH",
            "McDONALD",
            "ÉLODIE dupont",
            "iPhone Fan",
            "DeShawn O'Neil",
        ],
    ),
    (
        "cyrillic",
        &[
            "Анна Петрова",
            "Дмитрий Иванов",
            "Ёлка Щукина",
            "Юлия Смирнова",
        ],
    ),
    (
        "greek",
        &[
            "Αλέξανδρος Παπαδόπουλος",
            "Σοφία Νικολάου",
            "ΟΔΥΣΣΕΑΣ",
            "Ελένη",
        ],
    ),
    (
        "cjk",
        &["王小明", "山田太郎", "김민준", "李娜", "さくら", "陳大文"],
    ),
    (
        "arabic",
        &["محمد العلي", "فاطمة الزهراء", "عمر", "ليلى حداد"],
    ),
    (
        "precomposed",
        &[
            "José Müller",
            "Zoë Brontë",
            "François Lefèvre",
            "Ångström Ørsted",
        ],
    ),
    (
        "decomposed",
        &[
            "Jose\u{301} Mu\u{308}ller",
            "Zoe\u{308} Bronte\u{308}",
            "Franc\u{327}ois Lefe\u{300}vre",
        ],
    ),
    (
        "ligature",
        &["ﬁona ﬂores", "Ǆemal", "ﬀion Oﬃce", "ﬆella ﬅar"],
    ),
    (
        "full_width",
        &["Ｔｏｍ Ｌｅｅ", "ＡＢＣ ｄｅｆ", "Ｍａｒｉａ"],
    ),
    ("math_letters", &["𝐀𝐥𝐞𝐱 𝐁𝐨𝐥𝐝", "𝔉𝔯𝔞𝔨𝔱𝔲𝔯", "ℌ𝔢𝔩𝔩𝔬"]),
    (
        "emoji",
        &["🦊 Foxy", "Zoë 🌈", "👩‍💻 dev", "🇫🇷 Marianne", "🙂"],
    ),
];

/// The kinds of hard names, in the order they are handed out.
pub const EXOTIC_KINDS: &[&str] = &[
    "mixed_case",
    "cyrillic",
    "greek",
    "cjk",
    "arabic",
    "precomposed",
    "decomposed",
    "ligature",
    "full_width",
    "math_letters",
    "emoji",
];

/// A lowercase ASCII localpart stem, unique once the caller appends an index.
pub fn localpart_stem(rng: &mut impl Rng) -> String {
    format!(
        "{}.{}",
        FIRST[rng.gen_range(0..FIRST.len())],
        LAST[rng.gen_range(0..LAST.len())]
    )
}

/// A plain display name ("Alice Smith").
pub fn plain(rng: &mut impl Rng) -> String {
    format!(
        "{} {}",
        capitalise(FIRST[rng.gen_range(0..FIRST.len())]),
        capitalise(LAST[rng.gen_range(0..LAST.len())])
    )
}

/// A hard display name of kind `EXOTIC_KINDS[kind % len]`.
pub fn exotic(kind: usize, rng: &mut impl Rng) -> String {
    let (_, names) = EXOTIC[kind % EXOTIC.len()];
    names[rng.gen_range(0..names.len())].to_owned()
}

/// A display name of several hundred characters across scripts.
pub fn long(rng: &mut impl Rng) -> String {
    let mut s = String::new();
    while s.chars().count() < 300 {
        if !s.is_empty() {
            s.push(' ');
        }
        if rng.gen_bool(0.3) {
            s.push_str(&exotic(rng.gen_range(0..EXOTIC.len()), rng));
        } else {
            s.push_str(&plain(rng));
        }
    }
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `len` random lowercase letters and digits (media ids, tokens, room ids).
pub fn alnum(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Letters only, as Synapse room ids use.
pub fn letters(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    #[test]
    fn kinds_match_the_table_and_nfkc_changes_the_forms_it_should() {
        assert_eq!(
            EXOTIC.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            EXOTIC_KINDS
        );
        for (kind, names) in EXOTIC {
            for name in *names {
                let nfkc: String = name.nfkc().collect();
                let changes = nfkc != *name;
                let should = matches!(
                    *kind,
                    "decomposed" | "ligature" | "full_width" | "math_letters"
                );
                assert_eq!(changes, should, "{kind}: {name:?} -> {nfkc:?}");
            }
        }
    }
}
