import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

// Just enough Markdown reading for the docs check: the repository's documents, their fenced code blocks
// (with the `<!-- docs-check: label -->` marker before a block, if any), their links, inline code and headings.

export const root = join(import.meta.dir, "../..");

/** The documents the check covers, relative to the repository root: README.md, BENCHMARKS.md, docs/**\/*.md. */
export function docFiles(): string[] {
  const out = ["README.md", "BENCHMARKS.md"];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith(".md")) out.push(rel);
    }
  };
  walk("docs");
  return out;
}

export type CodeBlock = { file: string; line: number; lang: string; code: string; label: string | null };

export type Doc = {
  file: string;
  text: string;
  /** Fenced code blocks, indentation removed. */
  blocks: CodeBlock[];
  /** The text outside fenced code blocks (each block replaced by blank lines, so line numbers hold). */
  prose: string;
};

/** Reads a document (path relative to the repository root) and splits its fenced code blocks from its prose. */
export function readDoc(file: string): Doc {
  const text = readFileSync(join(root, file), "utf8");
  const lines = text.split("\n");
  const blocks: CodeBlock[] = [];
  const prose: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!);
    if (!open) {
      prose.push(lines[i]!);
      continue;
    }
    const [, indent, fence, lang] = open;
    const start = i;
    const body: string[] = [];
    prose.push("");
    for (i++; i < lines.length && !lines[i]!.trimStart().startsWith(fence!); i++) {
      body.push(lines[i]!.startsWith(indent!) ? lines[i]!.slice(indent!.length) : lines[i]!.trimStart());
      prose.push("");
    }
    prose.push("");
    let j = start - 1;
    while (j >= 0 && lines[j]!.trim() === "") j--;
    const label = j >= 0 ? (/^\s*<!-- docs-check: ([\w-]+) -->\s*$/.exec(lines[j]!)?.[1] ?? null) : null;
    blocks.push({ file, line: start + 1, lang: lang ?? "", code: body.join("\n"), label });
  }
  return { file, text, blocks, prose: prose.join("\n") };
}

/** Inline code spans of the prose, with their line numbers. */
export function inlineCode(doc: Doc): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  // A span may wrap onto the next line; join the prose, then count lines back.
  const re = /(?<!`)`([^`]+)`(?!`)/g;
  for (const m of doc.prose.matchAll(re)) {
    out.push({ code: m[1]!.replace(/\s*\n\s*/g, " "), line: doc.prose.slice(0, m.index).split("\n").length });
  }
  return out;
}

/** Markdown links and images of the prose (`[text](target)`), inline code removed first. */
export function links(doc: Doc): { target: string; line: number }[] {
  const prose = doc.prose.replace(/(?<!`)`[^`]+`(?!`)/g, (s) => s.replace(/[^\n]/g, " "));
  const out: { target: string; line: number }[] = [];
  for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    out.push({ target: m[1]!, line: prose.slice(0, m.index).split("\n").length });
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a document defines: one per heading (repeats get -1, -2… as on GitHub). */
export function anchors(doc: Doc): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of doc.prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** `file:line` for messages. */
export function at(file: string, line: number): string {
  return `${relative(root, join(root, file))}:${line}`;
}
