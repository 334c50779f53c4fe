//! The human-readable part of bounces, delay warnings and success reports,
//! in English and French, written for a sender who knows nothing of SMTP:
//! what happened, whose side the problem is likely on, and what to do. Also the RFC 2047
//! encoded words of the report's `Subject:` and of the original's.

use super::{Action, Diagnostic, Entry, Nature, Report};

/// A language of the human-readable part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    En,
    Fr,
}

impl Lang {
    /// The `Content-Language:` tag.
    pub(super) fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }
}

/// The configured languages we have texts for (`en`, `fr`, `fr-CA`, …), in
/// order and without repeats; English when none is usable.
pub(super) fn languages(configured: &[String]) -> Vec<Lang> {
    let mut out = Vec::new();
    for l in configured {
        let primary = l.split(['-', '_']).next().unwrap_or("");
        let lang = match primary.to_ascii_lowercase().as_str() {
            "en" => Lang::En,
            "fr" => Lang::Fr,
            _ => continue,
        };
        if !out.contains(&lang) {
            out.push(lang);
        }
    }
    if out.is_empty() {
        out.push(Lang::En);
    }
    out
}

/// The report's subject, every language joined by " / ". A success report
/// names the original's subject (decoded), as a reply would.
pub(super) fn subject(langs: &[Lang], r: &Report<'_>, original: Option<&str>) -> String {
    let relayed = r.entries.iter().any(|e| e.action == Action::Relayed);
    let nature = Nature::of(&r.entries);
    let one = |l: &Lang| match (l, nature) {
        (Lang::En, Nature::Failure) => "Undelivered mail returned to sender".to_string(),
        (Lang::Fr, Nature::Failure) => "Message non distribué".to_string(),
        (Lang::En, Nature::Delay) => "Delayed mail (still being retried)".to_string(),
        (Lang::Fr, Nature::Delay) => "Message retardé (nouvelles tentatives en cours)".to_string(),
        (Lang::En, Nature::Success) => format!(
            "{}: {}",
            if relayed { "Relayed" } else { "Delivered" },
            original.unwrap_or("(no subject)")
        ),
        (Lang::Fr, Nature::Success) => format!(
            "{} : {}",
            if relayed { "Transmis" } else { "Distribué" },
            original.unwrap_or("(sans objet)")
        ),
    };
    langs.iter().map(one).collect::<Vec<_>>().join(" / ")
}

/// What went wrong for one recipient, in the sender's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delivered,
    Relayed,
    Delayed,
    NoUser,
    NoDomain,
    Unreachable,
    MailboxFull,
    TooBig,
    Policy,
    Local,
    GaveUp,
    Other,
}

fn kind(e: &Entry) -> Kind {
    match e.action {
        Action::Delayed => return Kind::Delayed,
        Action::Delivered => return Kind::Delivered,
        Action::Relayed => return Kind::Relayed,
        Action::Failed => {}
    }
    let mut it = e.status.split('.');
    let (class, subject, detail) = (it.next(), it.next(), it.next());
    match (subject, detail) {
        (Some("1"), Some("2" | "10")) => Kind::NoDomain,
        (Some("1"), _) => Kind::NoUser,
        (Some("2"), Some("2")) => Kind::MailboxFull,
        (Some("3"), Some("4")) | (Some("2"), Some("3")) => Kind::TooBig,
        (Some("4"), _) => Kind::Unreachable,
        (Some("7"), _) => Kind::Policy,
        _ if matches!(e.diagnostic, Diagnostic::Unix(_)) => Kind::Local,
        _ if class == Some("4") => Kind::GaveUp,
        _ => Kind::Other,
    }
}

fn explain(kind: Kind, lang: Lang, host: &str, span: &str) -> String {
    use {Kind::*, Lang::*};
    match (kind, lang) {
        (Delivered, En) => format!("Delivered: your message is in the recipient's mailbox on this server ({host}). This does not tell whether they have read it yet."),
        (Delivered, Fr) => format!("Distribué : votre message est dans la boîte aux lettres du destinataire, sur ce serveur ({host}). Cela ne dit pas s'il l'a déjà lu."),
        (Relayed, En) => "Handed over to the recipient's mail server, which accepted it. That server does not send delivery confirmations, so this is the last confirmation you will get for this recipient. If it cannot deliver your message after all, it should tell you.".into(),
        (Relayed, Fr) => "Transmis au serveur de messagerie du destinataire, qui l'a accepté. Ce serveur n'envoie pas de confirmation de remise : c'est donc la dernière confirmation que vous recevrez pour ce destinataire. S'il ne parvient finalement pas à remettre votre message, il devrait vous prévenir.".into(),
        (Delayed, En) => "Not delivered yet. We will try again; you do not need to do anything.".into(),
        (Delayed, Fr) => "Pas encore remis. Nous allons réessayer ; vous n'avez rien à faire.".into(),
        (NoUser, En) => "This address does not exist: the recipient's mail server has no mailbox by that name. Most often the address is misspelled (one wrong letter is enough) or no longer in use. Check its spelling, or ask the person for their current address, then send your message again.".into(),
        (NoUser, Fr) => "Cette adresse n'existe pas : le serveur de messagerie du destinataire n'a aucune boîte aux lettres à ce nom. Le plus souvent, l'adresse est mal orthographiée (une seule lettre suffit) ou n'est plus utilisée. Vérifiez son orthographe, ou demandez à la personne son adresse actuelle, puis renvoyez votre message.".into(),
        (NoDomain, En) => "The domain of this address (the part after the @) does not exist or does not receive mail. Check its spelling. If it is right, the recipient's organisation has a problem with its mail: tell them some other way, for example by phone.".into(),
        (NoDomain, Fr) => "Le domaine de cette adresse (la partie après le @) n'existe pas ou ne reçoit pas de courrier. Vérifiez son orthographe. S'il est correct, c'est la messagerie du destinataire qui a un problème : prévenez-le par un autre moyen, par exemple par téléphone.".into(),
        (Unreachable, En) => "The recipient's mail server could not be reached. Either the domain of the address (the part after the @) is misspelled, or that server is out of service. Your message is not the problem: check the address and, if it is right, tell the recipient some other way and try again later.".into(),
        (Unreachable, Fr) => "Le serveur de messagerie du destinataire est resté injoignable. Soit le domaine de l'adresse (la partie après le @) est mal orthographié, soit ce serveur est en panne. Votre message n'est pas en cause : vérifiez l'adresse et, si elle est correcte, prévenez le destinataire par un autre moyen et réessayez plus tard.".into(),
        (MailboxFull, En) => "The recipient's mailbox is full, so their server cannot accept new mail. Only the recipient can make room. Tell them some other way, then try again in a few days.".into(),
        (MailboxFull, Fr) => "La boîte aux lettres du destinataire est pleine : son serveur ne peut plus accepter de nouveaux messages. Seul le destinataire peut faire de la place. Prévenez-le par un autre moyen, puis réessayez dans quelques jours.".into(),
        (TooBig, En) => "Your message is too big for the recipient's mail server. Send a smaller one: leave out large attachments, or put the files on a sharing service and send a link instead.".into(),
        (TooBig, Fr) => "Votre message est trop volumineux pour le serveur du destinataire. Envoyez-en un plus petit : retirez les pièces jointes volumineuses, ou déposez les fichiers sur un service de partage et envoyez simplement le lien.".into(),
        (Policy, En) => "The recipient's mail server refused your message because of its own rules. Most often its spam filter took your message for spam, or it does not accept mail from your address or from this server. The address itself is probably right. Contact the recipient some other way (phone, another address) and ask them to allow your address; removing links or attachments sometimes helps.".into(),
        (Policy, Fr) => "Le serveur du destinataire a refusé votre message en vertu de ses propres règles. Le plus souvent, son filtre anti-spam l'a pris pour un courrier indésirable, ou il n'accepte pas le courrier de votre adresse ou de ce serveur. L'adresse elle-même est probablement correcte. Contactez le destinataire par un autre moyen (téléphone, autre adresse) et demandez-lui d'autoriser votre adresse ; retirer les liens ou les pièces jointes aide parfois.".into(),
        (Local, En) => format!("Your message reached this server ({host}), but putting it into the recipient's mailbox failed here. The problem is on this server, not with your message or the address: please forward this report to the administrator of {host}."),
        (Local, Fr) => format!("Votre message est bien arrivé sur ce serveur ({host}), mais son dépôt dans la boîte aux lettres du destinataire a échoué ici. Le problème vient de ce serveur, pas de votre message ni de l'adresse : transmettez ce rapport à l'administrateur de {host}."),
        (GaveUp, En) => format!("We tried to deliver your message for {span}, but the recipient's mail server could not be reached or kept asking us to try again later, so we gave up. The problem is on the recipient's side, not yours. You can send your message again later, or contact the recipient some other way."),
        (GaveUp, Fr) => format!("Nous avons essayé de remettre votre message pendant {span}, mais le serveur du destinataire est resté injoignable ou nous a toujours demandé de réessayer plus tard ; nous avons donc abandonné. Le problème vient du côté du destinataire, pas du vôtre. Vous pouvez renvoyer votre message plus tard, ou contacter le destinataire par un autre moyen."),
        (Other, En) => "The recipient's mail server refused your message. Its answer, quoted below, may say why. If it is not clear to you, forward this report to your own mail administrator, or contact the recipient some other way.".into(),
        (Other, Fr) => "Le serveur du destinataire a refusé votre message. Sa réponse, citée ci-dessous, en donne peut-être la raison. Si elle n'est pas claire pour vous, transmettez ce rapport à l'administrateur de votre messagerie, ou contactez le destinataire par un autre moyen.".into(),
    }
}

/// The human-readable text in `lang`. `subject` is the original's, decoded;
/// `full` says whether the whole original is attached (else its header).
pub(super) fn human(r: &Report<'_>, lang: Lang, subject: Option<&str>, full: bool) -> String {
    let en = lang == Lang::En;
    let subject = subject.unwrap_or(if en { "(no subject)" } else { "(sans objet)" });
    let host = r.hostname;
    let nature = Nature::of(&r.entries);
    let span = span(r.now.saturating_sub(r.envelope.created), lang);
    let mut t = String::new();
    para(
        &mut t,
        "",
        &if en {
            format!(
                "This is the mail system at {host}. It wrote this message automatically; there is no need to reply to it."
            )
        } else {
            format!(
                "Ceci est le système de messagerie de {host}. Ce message a été écrit automatiquement ; inutile d'y répondre."
            )
        },
    );
    let until = r.retry_until.map(|u| date(u, lang));
    let intro = match (nature, en, until) {
        (Nature::Success, true, _) => "You asked to be told when your message reached its recipients. Below is where it stands for each of them. You do not need to do anything.".to_string(),
        (Nature::Success, false, _) => "Vous avez demandé à être prévenu de l'arrivée de votre message. Vous trouverez ci-dessous où il en est pour chacun de ses destinataires. Vous n'avez rien à faire.".to_string(),
        (Nature::Failure, true, _) => "Your message could not be delivered to one or more of its recipients. For each of them, you will find below what went wrong and what you can do.".to_string(),
        (Nature::Failure, false, _) => "Votre message n'a pas pu être remis à un ou plusieurs de ses destinataires. Vous trouverez ci-dessous, pour chacun d'eux, ce qui s'est passé et ce que vous pouvez faire.".to_string(),
        (Nature::Delay, true, Some(d)) => format!("Your message has not been delivered yet to one or more of its recipients. This is only a warning: nothing is lost, and we keep trying to deliver it until {d}. You do not need to do anything. If it still cannot be delivered by then, you will get another message."),
        (Nature::Delay, false, Some(d)) => format!("Votre message n'a pas encore pu être remis à un ou plusieurs de ses destinataires. Ceci n'est qu'un avertissement : rien n'est perdu, et nous continuons d'essayer de le remettre jusqu'au {d}. Vous n'avez rien à faire. S'il ne peut toujours pas être remis d'ici là, vous recevrez un autre message."),
        (Nature::Delay, true, None) => "Your message has not been delivered yet to one or more of its recipients. This is only a warning: nothing is lost, and we keep trying to deliver it. You do not need to do anything. If it finally cannot be delivered, you will get another message.".to_string(),
        (Nature::Delay, false, None) => "Votre message n'a pas encore pu être remis à un ou plusieurs de ses destinataires. Ceci n'est qu'un avertissement : rien n'est perdu, et nous continuons d'essayer de le remettre. Vous n'avez rien à faire. S'il ne peut finalement pas être remis, vous recevrez un autre message.".to_string(),
    };
    para(&mut t, "", &intro);
    let sent = date(r.envelope.created, lang);
    if en {
        t.push_str(&format!("    Subject: {subject}\n    Sent:    {sent}\n\n"));
    } else {
        t.push_str(&format!(
            "    Objet :     {subject}\n    Envoyé le : {sent}\n\n"
        ));
    }
    let mut seen: Vec<(Kind, &str)> = Vec::new();
    for e in &r.entries {
        let k = kind(e);
        t.push_str(&format!("* {}\n", e.address));
        let text = match seen.iter().find(|(s, _)| *s == k) {
            Some((_, first)) if matches!(k, Kind::Delivered | Kind::Relayed) => {
                if en {
                    format!("Same as for {first} above.")
                } else {
                    format!("Comme pour {first} ci-dessus.")
                }
            }
            Some((_, first)) if en => format!("Same problem as for {first} above."),
            Some((_, first)) => format!("Même problème que pour {first} ci-dessus."),
            None => {
                seen.push((k, &e.address));
                let mut x = explain(k, lang, host, &span);
                if e.status.starts_with('4') && !matches!(k, Kind::Delayed | Kind::GaveUp) {
                    x.push_str(&if en {
                        format!(" We kept trying for {span} before giving up.")
                    } else {
                        format!(" Nous avons réessayé pendant {span} avant d'abandonner.")
                    });
                }
                x
            }
        };
        para(&mut t, "  ", &text);
        let (said, reply) = match (&e.diagnostic, &e.remote_mta, en) {
            (Diagnostic::Smtp(s), Some(m), true) => {
                (format!("The receiving server ({m}) answered:"), s)
            }
            (Diagnostic::Smtp(s), Some(m), false) => {
                (format!("Le serveur destinataire ({m}) a répondu :"), s)
            }
            (Diagnostic::Smtp(s), None, true) => ("The receiving server answered:".into(), s),
            (Diagnostic::Smtp(s), None, false) => ("Le serveur destinataire a répondu :".into(), s),
            (Diagnostic::Unix(s), _, true) => {
                ("The delivery program on this server said:".into(), s)
            }
            (Diagnostic::Unix(s), _, false) => (
                "Le programme de distribution de ce serveur a indiqué :".into(),
                s,
            ),
            (Diagnostic::None, ..) => continue,
        };
        t.push_str(&format!("  {said}\n"));
        for line in reply.lines().filter(|l| !l.trim().is_empty()) {
            t.push_str(&format!("      {}\n", printable(line)));
        }
        t.push('\n');
    }
    para(
        &mut t,
        "",
        match (full, en) {
            (true, true) => {
                "Your original message is attached below, in case you want to send it again."
            }
            (true, false) => {
                "Votre message d'origine est joint ci-dessous, si vous souhaitez le renvoyer."
            }
            (false, true) => {
                "The header of your message (sender, recipients, subject, date) is attached below; its text is not."
            }
            (false, false) => {
                "L'en-tête de votre message (expéditeur, destinataires, objet, date) est joint ci-dessous ; son texte ne l'est pas."
            }
        },
    );
    t.push_str(&format!(
        "-- \n{} {host}\n",
        if en {
            "The mail system at"
        } else {
            "Le système de messagerie de"
        }
    ));
    cap_lines(&t)
}

/// Appends `text` wrapped at 72 columns, each line after `indent`, then a
/// blank line.
fn para(out: &mut String, indent: &str, text: &str) {
    let mut col = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let n = word.chars().count();
        if col > 0 && col + 1 + n > 72 {
            out.push('\n');
            col = 0;
        }
        if col == 0 {
            out.push_str(indent);
            col = indent.chars().count();
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += n;
    }
    out.push_str("\n\n");
}

/// `s` with control characters (a stray CR, tabs, escapes) made spaces.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Splits any line longer than 998 octets (RFC 5322 §2.1.1) at a character
/// boundary, continuing it on the next line after two spaces.
fn cap_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut len = 0;
        for c in line.chars() {
            if len + c.len_utf8() > 990 && c != '\n' {
                out.push_str("\n  ");
                len = 2;
            }
            out.push(c);
            len += c.len_utf8();
        }
    }
    out
}

/// A length of time in round days, hours or minutes.
fn span(secs: u64, lang: Lang) -> String {
    let (n, unit) = match secs {
        86_400.. => ((secs + 43_200) / 86_400, 0),
        3_600.. => ((secs + 1_800) / 3_600, 1),
        _ => ((secs + 30) / 60, 2),
    };
    let word = match (lang, unit, n == 1) {
        (Lang::En, 0, true) => "day",
        (Lang::En, 0, false) => "days",
        (Lang::En, 1, true) => "hour",
        (Lang::En, 1, false) => "hours",
        (Lang::En, _, true) => "minute",
        (Lang::En, _, false) => "minutes",
        (Lang::Fr, 0, true) => "jour",
        (Lang::Fr, 0, false) => "jours",
        (Lang::Fr, 1, true) => "heure",
        (Lang::Fr, 1, false) => "heures",
        (Lang::Fr, _, _) => "minutes",
    };
    format!("{n} {word}")
}

/// A date for people: "28 November 2026 at 18:20 UTC", "28 novembre 2026 à
/// 18:20 (UTC)".
pub(super) fn date(unix: u64, lang: Lang) -> String {
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const FR: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    let s = mxa_message::rfc3339(unix); // 2026-11-28T18:20:00Z
    let num = |a: usize, b: usize| {
        s.get(a..b)
            .and_then(|x| x.parse::<usize>().ok())
            .unwrap_or(1)
    };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let hm = s.get(11..16).unwrap_or("00:00");
    let month = |names: [&'static str; 12]| names.get(m.saturating_sub(1)).copied().unwrap_or("");
    match lang {
        Lang::En => format!("{d} {} {y} at {hm} UTC", month(EN)),
        Lang::Fr if d == 1 => format!("1er {} {y} à {hm} (UTC)", month(FR)),
        Lang::Fr => format!("{d} {} {y} à {hm} (UTC)", month(FR)),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

/// A header value as RFC 2047 encoded words when it is not ASCII, folded
/// between words.
pub(super) fn encode_words(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 39 {
            words.push(format!("=?UTF-8?B?{}?=", b64_encode(chunk.as_bytes())));
            chunk.clear();
        }
        chunk.push(c);
    }
    words.push(format!("=?UTF-8?B?{}?=", b64_encode(chunk.as_bytes())));
    words.join("\n ")
}

/// A header value with its RFC 2047 encoded words decoded (UTF-8, US-ASCII
/// and ISO-8859-1; others are left as written), control characters made
/// spaces.
pub(super) fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        match decode_word(word) {
            Some((text, used)) => {
                // White space between two encoded words is not shown.
                if !(after_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &word[used..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &word[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    printable(&out)
}

/// One `=?charset?enc?text?=` at the start of `s`: its text and length.
fn decode_word(s: &str) -> Option<(String, usize)> {
    let body = s.get(2..)?;
    let (charset, rest) = body.split_once('?')?;
    let (enc, rest) = rest.split_once('?')?;
    let (text, _) = rest.split_once("?=")?;
    if text.contains([' ', '\t', '\n']) || charset.contains([' ', '\n']) {
        return None;
    }
    let used = charset.len() + enc.len() + text.len() + 6;
    let bytes = match enc {
        "B" | "b" => b64_decode(text)?,
        "Q" | "q" => q_decode(text)?,
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    let decoded = match charset.as_str() {
        "utf-8" | "utf8" | "us-ascii" => String::from_utf8_lossy(&bytes).into_owned(),
        "iso-8859-1" | "latin1" => bytes.iter().map(|&b| char::from(b)).collect(),
        _ => return None,
    };
    Some((decoded, used))
}

fn q_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(
            decode_words("=?utf-8?q?a?= =?ISO-8859-1?B?6Q==?= b"),
            "aé b"
        );
        assert_eq!(decode_words("=?UTF-8*fr?B?w6k=?=!"), "é!");
        assert_eq!(
            decode_words("=?x?y?z and =?koi8-r?B?xQ==?="),
            "=?x?y?z and =?koi8-r?B?xQ==?="
        );
        let long = "Message non distribué / ".repeat(4);
        let enc = encode_words(&long);
        assert!(enc.is_ascii() && enc.lines().all(|l| l.len() <= 76));
        assert_eq!(decode_words(&enc.replace('\n', "")), long);
        assert_eq!(encode_words("plain"), "plain");
    }

    #[test]
    fn dates_and_spans() {
        assert_eq!(
            date(1_764_547_200, Lang::Fr),
            "1er décembre 2025 à 00:00 (UTC)"
        );
        assert_eq!(
            date(1_763_922_000, Lang::En),
            "23 November 2025 at 18:20 UTC"
        );
        assert_eq!(span(5 * 86_400 - 60, Lang::Fr), "5 jours");
        assert_eq!(span(3_600, Lang::En), "1 hour");
        assert_eq!(
            languages(&["de".into(), "fr-CA".into(), "fr".into()]),
            [Lang::Fr]
        );
    }
}
