"""Which language a file is in: a table of extensions and file names, plus shebangs."""

from __future__ import annotations

EXTENSIONS: dict[str, str] = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "jsx": "javascript",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "tsx": "tsx",
    "go": "go",
    "java": "java",
    "kt": "kotlin",
    "kts": "kotlin",
    "scala": "scala",
    "sc": "scala",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "c++": "cpp",
    "hh": "cpp",
    "hpp": "cpp",
    "hxx": "cpp",
    "cs": "csharp",
    "rs": "rust",
    "rb": "ruby",
    "rake": "ruby",
    "gemspec": "ruby",
    "php": "php",
    "swift": "swift",
    "ex": "elixir",
    "exs": "elixir",
    "hs": "haskell",
    "lua": "lua",
    "zig": "zig",
    "sh": "bash",
    "bash": "bash",
    "zsh": "bash",
    "md": "markdown",
    "markdown": "markdown",
    "mdx": "markdown",
    "rst": "rst",
    "txt": "text",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "ini": "ini",
    "cfg": "ini",
    "sql": "sql",
    "html": "html",
    "htm": "html",
    "css": "css",
    "scss": "css",
    "xml": "xml",
    "proto": "protobuf",
    "graphql": "graphql",
    "tf": "terraform",
    "dart": "dart",
    "r": "r",
    "pl": "perl",
    "pm": "perl",
    "vue": "vue",
    "svelte": "svelte",
    "erb": "erb",
    "jinja": "jinja",
    "j2": "jinja",
}

FILENAMES: dict[str, str] = {
    "Makefile": "make",
    "Dockerfile": "dockerfile",
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "CMakeLists.txt": "cmake",
}

_SHEBANGS: dict[str, str] = {
    "python": "python",
    "bash": "bash",
    "sh": "bash",
    "zsh": "bash",
    "node": "javascript",
    "ruby": "ruby",
    "lua": "lua",
    "php": "php",
}


def language_of(path: str, first_line: str = "") -> str | None:
    """The language of ``path``, from its extension, name or shebang line."""
    name = path.rsplit("/", 1)[-1]
    if name in FILENAMES:
        return FILENAMES[name]
    if "." in name:
        ext = name.rsplit(".", 1)[-1].lower()
        if ext in EXTENSIONS:
            return EXTENSIONS[ext]
    if first_line.startswith("#!"):
        words = first_line[2:].replace("/", " ").split()
        for word in reversed(words):
            base = word.rstrip("0123456789.")
            if base in _SHEBANGS:
                return _SHEBANGS[base]
    return None
