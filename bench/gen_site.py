"""Generate a deterministic synthetic municipal site for the benchmark.

    python bench/gen_site.py --pages 20000 --port 18080 --www bench/work/www --ext bench/work/ext

writes ``<www>/s<pages>/`` (exactly ``--pages`` HTML pages) and the outside sites' pages under
``<ext>/s<pages>/`` (served on 127.0.0.2-4 by bench/nginx.conf.in). The same arguments give
byte-identical output; a stamp file skips regeneration when nothing changed.

Every content page has about 20 links: home and section index, previous/next, ten links to
other pages (some with ``#fragments``, a few to missing pages or missing fragments, a few
through a 301), a stylesheet, an image, a mailto, two links to outside hosts (a few of them
404 or 301), and on a third of the pages a "(pdf)" link (a few missing or not a PDF). Pages
end with a review-date footer ("Sidan har granskats 2021-04-07"), except 8 %.
Path names are made of letters only, so no URL "shape" repeats (sitewatch's crawl-trap
guard masks digits).

``expected.json`` beside the pages counts what was planted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
from pathlib import Path

PAGES_PER_SECTION = 100
_WORD_TEXT = (
    "bygga bo miljo skola omsorg kultur fritid trafik natur arbete stod hjalp tillstand "
    "avgift ansokan forskola grundskola gymnasium vuxen aldre handikapp bibliotek idrott "
    "park gata vatten avlopp avfall energi klimat bostad plan karta detaljplan bygglov "
    "naringsliv foretag turism evenemang politik namnd styrelse protokoll val medborgare "
    "dialog synpunkt trygghet krisberedskap folkhalsa socialtjanst ekonomi budget"
)
WORDS = _WORD_TEXT.split()
FILLER = (
    "Kommunen arbetar for att alla invanare ska fa den service de behover. Har hittar du "
    "information om hur du ansoker, vilka regler som galler och vem du kan kontakta. "
    "Handlaggningstiden ar normalt fyra veckor fran det att ansokan ar komplett. "
)
PDF_BODY = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
PNG_BODY = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def letters(n: int, width: int = 3) -> str:
    """A letters-only name for ``n`` (base 26, at least ``width`` letters)."""
    out = []
    while n or len(out) < width:
        n, r = divmod(n, 26)
        out.append(chr(97 + r))
    return "".join(reversed(out))


def slug(rng: random.Random, n: int) -> str:
    return f"{rng.choice(WORDS)}-{letters(n)}"


class Site:
    def __init__(self, pages: int, port: int, seed: int) -> None:
        self.n = pages
        self.port = port
        self.name = f"s{pages}"
        self.root = f"/{self.name}/"
        rng = random.Random(seed * 1_000_003 + pages)
        self.sections = max(1, (pages - 1) // (PAGES_PER_SECTION + 1))
        content = pages - 1 - self.sections
        self.sec_slugs = [f"{rng.choice(WORDS)}-{letters(i)}" for i in range(self.sections)]
        # content page k lives in section k % sections
        self.page_paths = [
            f"{self.root}{self.sec_slugs[k % self.sections]}/{slug(rng, k)}.html"
            for k in range(content)
        ]
        self.pdf_count = max(10, pages // 20)
        self.pdf_paths = [f"{self.root}filer/{slug(rng, k)}.pdf" for k in range(self.pdf_count)]
        self.pdf_missing = set(rng.sample(range(self.pdf_count), max(1, self.pdf_count // 30)))
        self.pdf_html = set(rng.sample(range(self.pdf_count), max(1, self.pdf_count // 50)))
        self.pdf_html -= self.pdf_missing
        self.ext_count = min(3000, max(30, pages // 10))
        self.ext_urls = []
        self.ext_files: list[str] = []
        ext_missing = set(rng.sample(range(self.ext_count), max(1, self.ext_count // 20)))
        ext_moved = set(rng.sample(range(self.ext_count), max(1, self.ext_count // 20)))
        self.ext_missing = len(ext_missing)
        for k in range(self.ext_count):
            host = f"127.0.0.{2 + k % 3}:{port}"
            path = f"/{self.name}/{slug(rng, k)}.html"
            if k not in ext_missing:
                self.ext_files.append(path)
            if k in ext_moved:
                self.ext_urls.append(f"http://{host}/flyttad{path}")
            else:
                self.ext_urls.append(f"http://{host}{path}")
        self.seed = seed

    def page_html(self, k: int, stats: dict[str, int]) -> str:
        rng = random.Random(self.seed * 7_919 + k)
        path = self.page_paths[k]
        sec = self.sec_slugs[k % self.sections]
        title = path.rsplit("/", 1)[1][:-5].replace("-", " ").capitalize()
        links: list[str] = [
            f'<a href="{self.root}">Startsida</a>',
            f'<a href="../{sec}/">{sec.split("-")[0].capitalize()}</a>',
        ]
        n = len(self.page_paths)
        if k > 0:
            links.append(f'<a href="{self.page_paths[k - 1]}">Föregående</a>')
        if k + 1 < n:
            links.append(f'<a href="{self.page_paths[k + 1]}">Nästa</a>')
        for j in range(10):
            other = self.page_paths[rng.randrange(n)]
            roll = rng.random()
            if roll < 0.02:
                other = other[:-5] + "-borttagen.html"
                stats["broken_internal_refs"] += 1
            elif roll < 0.03:
                other = other.replace(self.root, f"{self.root}gammal/", 1)
                stats["redirect_internal_refs"] += 1
            elif roll < 0.035:
                other = other.replace(self.root, f"{self.root}tillfallig/", 1)
            if j == 0:
                if rng.random() < 0.025:
                    other += "#saknas"
                    stats["missing_fragment_refs"] += 1
                else:
                    other += f"#del-{rng.randrange(1, 4)}"
            links.append(f'<a href="{other}">{title} {j}</a>')
        if k % 3 == 0:
            p = rng.randrange(self.pdf_count)
            stats["pdf_refs"] += 1
            if p in self.pdf_missing or p in self.pdf_html:
                stats["bad_pdf_refs"] += 1
            links.append(f'<a href="{self.pdf_paths[p]}">Broschyr (pdf)</a>')
        for _ in range(2):
            e = rng.randrange(self.ext_count)
            links.append(f'<a href="{self.ext_urls[e]}">Extern tjänst</a>')
        links.append(f'<img src="{self.root}bilder/{letters(k % 20)}.png" alt="Bild">')
        links.append(f'<a href="mailto:kontakt@{self.name}.invalid">Kontakta oss</a>')
        body = "".join(
            f'<h2 id="del-{i}">Del {i}</h2><p>{FILLER}</p><p>{" ".join(links[i::4])}</p>'
            for i in range(1, 4)
        )
        body += f"<p>{' '.join(links[0::4])}</p>"
        if rng.random() < 0.92:
            y, m, d = rng.randrange(2019, 2027), rng.randrange(1, 13), rng.randrange(1, 29)
            footer = f"<footer><p>Sidan har granskats {y}-{m:02d}-{d:02d}</p></footer>"
        else:
            footer = "<footer><p>Kontakt: kommunen</p></footer>"
            stats["no_review_date"] += 1
        return (
            '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
            f'<title>{title}</title><link rel="stylesheet" href="{self.root}style.css">'
            f'</head><body><main><h1 id="top-rubrik">{title}</h1>{body}</main>'
            f"{footer}</body></html>\n"
        )

    def write(self, www: Path, ext: Path) -> dict[str, int]:
        base = www / self.name
        stats: dict[str, int] = {
            "pages": self.n,
            "broken_internal_refs": 0,
            "redirect_internal_refs": 0,
            "missing_fragment_refs": 0,
            "pdf_refs": 0,
            "bad_pdf_refs": 0,
            "no_review_date": 0,
            "pdf_files_missing": len(self.pdf_missing),
            "pdf_files_not_pdf": len(self.pdf_html),
            "external_urls": self.ext_count,
            "external_urls_missing": self.ext_missing,
        }
        for sec in self.sec_slugs:
            (base / sec).mkdir(parents=True, exist_ok=True)
        (base / "filer").mkdir(parents=True, exist_ok=True)
        (base / "bilder").mkdir(parents=True, exist_ok=True)
        (base / "style.css").write_text("body{font-family:sans-serif}\n")
        for i in range(20):
            (base / "bilder" / f"{letters(i)}.png").write_bytes(PNG_BODY)
        for k, p in enumerate(self.pdf_paths):
            if k in self.pdf_missing:
                continue
            body = b"<!doctype html><title>Inte en pdf</title>" if k in self.pdf_html else PDF_BODY
            (www / p.lstrip("/")).write_bytes(body)
        sec_links: dict[int, list[str]] = {i: [] for i in range(self.sections)}
        for k, p in enumerate(self.page_paths):
            sec_links[k % self.sections].append(f'<li><a href="{p}">Sida {letters(k)}</a></li>')
            (www / p.lstrip("/")).write_text(self.page_html(k, stats), encoding="utf-8")
        for i, sec in enumerate(self.sec_slugs):
            html = (
                '<!doctype html><html lang="sv"><head><meta charset="utf-8">'
                f"<title>{sec}</title></head><body><h1>{sec}</h1>"
                f'<p><a href="{self.root}">Startsida</a></p><ul>{"".join(sec_links[i])}</ul>'
                "<footer><p>Sidan har granskats 2026-01-15</p></footer></body></html>\n"
            )
            (base / sec / "index.html").write_text(html, encoding="utf-8")
        home = "".join(f'<li><a href="{s}/">{s}</a></li>' for s in self.sec_slugs)
        (base / "index.html").write_text(
            '<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>Startsida</title>'
            f"</head><body><h1>Startsida</h1><ul>{home}</ul>"
            "<footer><p>Sidan har granskats 2026-02-01</p></footer></body></html>\n",
            encoding="utf-8",
        )
        ext_base = ext / self.name
        ext_base.mkdir(parents=True, exist_ok=True)
        for p in self.ext_files:
            (ext / p.lstrip("/")).write_text(
                "<!doctype html><html><head><title>Extern</title></head><body>"
                "<p>En extern sida.</p></body></html>\n"
            )
        return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--www", type=Path, required=True)
    ap.add_argument("--ext", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    name = f"s{args.pages}"
    stamp_key = hashlib.sha256(
        Path(__file__).read_bytes() + f"{args.pages}:{args.port}:{args.seed}".encode()
    ).hexdigest()
    stamp = args.www / name / ".stamp"
    if stamp.exists() and stamp.read_text() == stamp_key:
        print(f"gen_site: {name} up to date")
        return
    for d in (args.www / name, args.ext / name):
        if d.exists():
            shutil.rmtree(d)
    site = Site(args.pages, args.port, args.seed)
    stats = site.write(args.www, args.ext)
    (args.www / name / "expected.json").write_text(json.dumps(stats, indent=1) + "\n")
    stamp.write_text(stamp_key)
    print(f"gen_site: wrote {name}: {json.dumps(stats)}")


if __name__ == "__main__":
    main()
