"""Knowledge bases (a tree of folders and files), their FAQs, website crawl targets and each
workspace's client whitelist: the ``KnowledgeStore`` half of both SQL backends.

Written once in the SQL SQLite and PostgreSQL share, like ``registry.py``. A subtree is
found by path prefix (``substr``, not ``LIKE``: a name may hold ``%`` or ``_``). Like the
registry, these tables are not derived data: a change of the index format never drops them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from repolens.domain import CrawlTarget, Faq, FileOrigin, KnowledgeNode, NodeKind
from repolens.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from repolens.storage.relational import Conn

_NODE_COLUMNS = (
    "id, public_id, root_id, parent_id, workspace_id, source_id, kind, name, path, description, size, sha256, "
    "index_sha, origin, origin_url, created_at, updated_at"
)
_FAQ_COLUMNS = "id, node_id, question, ranges, created_at, updated_at"
_CRAWL_COLUMNS = "id, folder_id, start_url, config, state, runs, pages, failures, created_at, updated_at"
_UPDATABLE_CRAWL_FIELDS = frozenset({"start_url", "config", "state", "runs", "pages", "failures", "updated_at"})


@dataclass(frozen=True, slots=True)
class NewNode:
    """A folder or file about to be stored under ``parent_id`` (None: a knowledge-base root)."""

    kind: NodeKind
    name: str
    path: str
    parent_id: int | None = None
    description: str = ""
    size: int = 0
    sha256: str = ""
    index_sha: str = ""
    origin: FileOrigin = "upload"
    origin_url: str = ""
    public_id: str = ""  # '' to draw a fresh UUID


class KnowledgeStore(Protocol):
    """Knowledge-base nodes, FAQs, crawl targets and client whitelists."""

    def create_nodes(self, *, workspace_id: int, source_id: int, nodes: Sequence[NewNode]) -> list[KnowledgeNode]:
        """Store nodes in one transaction (all or none); ``Conflict`` if a name is taken beside them."""
        ...

    def get_node(self, public_id: str) -> KnowledgeNode | None:
        """A node by its public id."""
        ...

    def get_node_by_id(self, node_id: int) -> KnowledgeNode | None:
        """A node by row id."""
        ...

    def child_nodes(self, parent_id: int) -> list[KnowledgeNode]:
        """A node's children: folders first, then by name."""
        ...

    def root_nodes(self) -> list[KnowledgeNode]:
        """Every knowledge-base root, by name."""
        ...

    def subtree(self, node: KnowledgeNode) -> list[KnowledgeNode]:
        """``node`` and everything under it."""
        ...

    def child_counts(self, parent_ids: Sequence[int]) -> dict[int, int]:
        """parent id -> number of children."""
        ...

    def rename_node(self, node: KnowledgeNode, *, name: str, path: str) -> None:
        """Rename a node and move its descendants' paths with it (``Conflict`` on a taken name)."""
        ...

    def delete_nodes(self, node_ids: Sequence[int]) -> None:
        """Remove nodes (their FAQs and crawl targets go with them)."""
        ...

    def create_faq(self, *, node_id: int, question: str, ranges: str) -> Faq:
        """A new FAQ on a file."""
        ...

    def get_faq(self, faq_id: int) -> Faq | None:
        """An FAQ by id."""
        ...

    def list_faqs(self, node_ids: Sequence[int], *, limit: int, offset: int) -> tuple[list[Faq], int]:
        """(one page of the FAQs of the given files by id, how many there are in all)."""
        ...

    def update_faq(self, faq_id: int, *, node_id: int, question: str, ranges: str) -> None:
        """Replace an FAQ's fields."""
        ...

    def delete_faq(self, faq_id: int) -> None:
        """Remove an FAQ."""
        ...

    def create_crawl_target(self, *, folder_id: int, start_url: str, config: str) -> CrawlTarget:
        """A website crawled into ``folder_id``."""
        ...

    def get_crawl_target(self, target_id: int) -> CrawlTarget | None:
        """A crawl target by id."""
        ...

    def crawl_target_of(self, folder_id: int) -> CrawlTarget | None:
        """The crawl target feeding a folder, if any."""
        ...

    def update_crawl_target(self, target_id: int, **fields: object) -> None:
        """Set start_url, config, state, runs, pages, failures or updated_at."""
        ...

    def add_workspace_source(self, workspace_id: int, source_id: int) -> None:
        """Make a knowledge base's source a member of its workspace (one row: no read-modify-write
        of the member list, which two bases made at once would race on)."""
        ...

    def client_whitelist(self, workspace_id: int) -> tuple[bool, tuple[str, ...]]:
        """(whitelist mode on, the external user ids allowed) of a workspace."""
        ...

    def set_client_whitelist(self, workspace_id: int, *, enabled: bool, external_user_ids: Sequence[str]) -> None:
        """Replace a workspace's whitelist mode and list."""
        ...


def _node(row: tuple[Any, ...]) -> KnowledgeNode:
    return KnowledgeNode(*row)


def _faq(row: tuple[Any, ...]) -> Faq:
    return Faq(*row)


def _crawl(row: tuple[Any, ...]) -> CrawlTarget:
    return CrawlTarget(*row)


class KnowledgeMixin:
    """``KnowledgeStore`` over a backend's connection and write transaction."""

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    # -- nodes ----------------------------------------------------------------------------

    def create_nodes(self, *, workspace_id: int, source_id: int, nodes: Sequence[NewNode]) -> list[KnowledgeNode]:
        """Store nodes in one transaction (all or none); ``Conflict`` if a name is taken beside them."""
        now = time.time()
        public_ids: list[str] = []
        with self._write(content=False) as conn:
            for new in nodes:
                self._check_free(conn, workspace_id, new.parent_id, new.name)
                public_id = new.public_id or str(uuid.uuid4())
                row = conn.execute(
                    "INSERT INTO kb_nodes(public_id, root_id, parent_id, workspace_id, source_id, kind, name, path, "
                    "description, size, sha256, index_sha, origin, origin_url, created_at, updated_at) "
                    "VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        public_id,
                        new.parent_id,
                        workspace_id,
                        source_id,
                        new.kind,
                        new.name,
                        new.path,
                        new.description,
                        new.size,
                        new.sha256,
                        new.index_sha,
                        new.origin,
                        new.origin_url,
                        now,
                        now,
                    ),
                ).fetchone()
                node_id = int(row[0])
                if new.parent_id is None:
                    root = node_id
                else:
                    parent = conn.execute("SELECT root_id FROM kb_nodes WHERE id = ?", (new.parent_id,)).fetchone()
                    if parent is None:
                        raise InvalidInput("the parent node no longer exists")
                    root = int(parent[0])
                conn.execute("UPDATE kb_nodes SET root_id = ? WHERE id = ?", (root, node_id))
                public_ids.append(public_id)
        found = [self.get_node(p) for p in public_ids]
        return [n for n in found if n is not None]

    @staticmethod
    def _check_free(conn: Conn, workspace_id: int, parent_id: int | None, name: str) -> None:
        # Checked, not caught: PostgreSQL aborts the whole transaction on a violation, and
        # roots (no parent) are unique per workspace, which no index over a NULL can say.
        if parent_id is None:
            taken = conn.execute(
                "SELECT 1 FROM kb_nodes WHERE parent_id IS NULL AND workspace_id = ? AND name = ?",
                (workspace_id, name),
            ).fetchone()
            where = "this workspace"
        else:
            taken = conn.execute("SELECT 1 FROM kb_nodes WHERE parent_id = ? AND name = ?", (parent_id, name)).fetchone()
            where = "this folder"
        if taken:
            raise Conflict(f"{where} already holds a node named {name!r}", [name])

    def get_node(self, public_id: str) -> KnowledgeNode | None:
        """A node by its public id."""
        row = self._conn.execute(f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE public_id = ?", (public_id,)).fetchone()
        return _node(row) if row else None

    def get_node_by_id(self, node_id: int) -> KnowledgeNode | None:
        """A node by row id."""
        row = self._conn.execute(f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE id = ?", (node_id,)).fetchone()
        return _node(row) if row else None

    def child_nodes(self, parent_id: int) -> list[KnowledgeNode]:
        """A node's children: folders first, then by name."""
        rows = self._conn.execute(
            f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE parent_id = ? ORDER BY kind DESC, name, id", (parent_id,)
        ).fetchall()
        return [_node(r) for r in rows]

    def root_nodes(self) -> list[KnowledgeNode]:
        """Every knowledge-base root, by name."""
        rows = self._conn.execute(
            f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE parent_id IS NULL ORDER BY name, id"
        ).fetchall()
        return [_node(r) for r in rows]

    def subtree(self, node: KnowledgeNode) -> list[KnowledgeNode]:
        """``node`` and everything under it."""
        if node.parent_id is None:
            rows = self._conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE root_id = ? ORDER BY path, id", (node.id,)
            ).fetchall()
        else:
            prefix = node.path + "/"
            rows = self._conn.execute(
                f"SELECT {_NODE_COLUMNS} FROM kb_nodes WHERE root_id = ? AND (id = ? OR substr(path, 1, ?) = ?) "
                "ORDER BY path, id",
                (node.root_id, node.id, len(prefix), prefix),
            ).fetchall()
        return [_node(r) for r in rows]

    def child_counts(self, parent_ids: Sequence[int]) -> dict[int, int]:
        """parent id -> number of children."""
        wanted = sorted(set(parent_ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(
            f"SELECT parent_id, count(*) FROM kb_nodes WHERE parent_id IN ({marks}) GROUP BY parent_id", tuple(wanted)
        ).fetchall()
        counts = {int(r[0]): int(r[1]) for r in rows}
        return {p: counts.get(p, 0) for p in wanted}

    def rename_node(self, node: KnowledgeNode, *, name: str, path: str) -> None:
        """Rename a node and move its descendants' paths with it (``Conflict`` on a taken name)."""
        with self._write(content=False) as conn:
            if name != node.name:
                self._check_free(conn, node.workspace_id, node.parent_id, name)
            conn.execute(
                "UPDATE kb_nodes SET name = ?, path = ?, updated_at = ? WHERE id = ?", (name, path, time.time(), node.id)
            )
            if node.parent_id is not None and node.kind == "folder":
                old = node.path + "/"
                conn.execute(
                    "UPDATE kb_nodes SET path = ? || substr(path, ?) WHERE root_id = ? AND id <> ? "
                    "AND substr(path, 1, ?) = ?",
                    (path + "/", len(old) + 1, node.root_id, node.id, len(old), old),
                )

    def delete_nodes(self, node_ids: Sequence[int]) -> None:
        """Remove nodes (their FAQs and crawl targets go with them)."""
        ids = sorted(set(node_ids))
        if not ids:
            return
        with self._write(content=False) as conn:
            for start in range(0, len(ids), 500):
                part = tuple(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                conn.execute(f"DELETE FROM kb_faqs WHERE node_id IN ({marks})", part)
                conn.execute(f"DELETE FROM kb_crawl_targets WHERE folder_id IN ({marks})", part)
                conn.execute(f"DELETE FROM kb_nodes WHERE id IN ({marks})", part)

    # -- FAQs -----------------------------------------------------------------------------

    def create_faq(self, *, node_id: int, question: str, ranges: str) -> Faq:
        """A new FAQ on a file."""
        now = time.time()
        with self._write(content=False) as conn:
            row = conn.execute(
                "INSERT INTO kb_faqs(node_id, question, ranges, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (node_id, question, ranges, now, now),
            ).fetchone()
        faq = self.get_faq(int(row[0]))
        assert faq is not None
        return faq

    def get_faq(self, faq_id: int) -> Faq | None:
        """An FAQ by id."""
        row = self._conn.execute(f"SELECT {_FAQ_COLUMNS} FROM kb_faqs WHERE id = ?", (faq_id,)).fetchone()
        return _faq(row) if row else None

    def list_faqs(self, node_ids: Sequence[int], *, limit: int, offset: int) -> tuple[list[Faq], int]:
        """(one page of the FAQs of the given files by id, how many there are in all)."""
        ids = tuple(sorted(set(node_ids)))
        if not ids:
            return [], 0
        marks = ",".join("?" * len(ids))
        total = self._conn.execute(f"SELECT count(*) FROM kb_faqs WHERE node_id IN ({marks})", ids).fetchone()
        rows = self._conn.execute(
            f"SELECT {_FAQ_COLUMNS} FROM kb_faqs WHERE node_id IN ({marks}) ORDER BY id LIMIT ? OFFSET ?",
            (*ids, limit, offset),
        ).fetchall()
        return [_faq(r) for r in rows], int(total[0])

    def update_faq(self, faq_id: int, *, node_id: int, question: str, ranges: str) -> None:
        """Replace an FAQ's fields."""
        with self._write(content=False) as conn:
            conn.execute(
                "UPDATE kb_faqs SET node_id = ?, question = ?, ranges = ?, updated_at = ? WHERE id = ?",
                (node_id, question, ranges, time.time(), faq_id),
            )

    def delete_faq(self, faq_id: int) -> None:
        """Remove an FAQ."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM kb_faqs WHERE id = ?", (faq_id,))

    # -- website crawl targets ------------------------------------------------------------

    def create_crawl_target(self, *, folder_id: int, start_url: str, config: str) -> CrawlTarget:
        """A website crawled into ``folder_id``."""
        now = time.time()
        with self._write(content=False) as conn:
            row = conn.execute(
                "INSERT INTO kb_crawl_targets(folder_id, start_url, config, state, runs, pages, failures, created_at, "
                "updated_at) VALUES (?, ?, ?, 'idle', 0, 0, '[]', ?, ?) RETURNING id",
                (folder_id, start_url, config, now, now),
            ).fetchone()
        target = self.get_crawl_target(int(row[0]))
        assert target is not None
        return target

    def get_crawl_target(self, target_id: int) -> CrawlTarget | None:
        """A crawl target by id."""
        row = self._conn.execute(f"SELECT {_CRAWL_COLUMNS} FROM kb_crawl_targets WHERE id = ?", (target_id,)).fetchone()
        return _crawl(row) if row else None

    def crawl_target_of(self, folder_id: int) -> CrawlTarget | None:
        """The crawl target feeding a folder, if any."""
        row = self._conn.execute(
            f"SELECT {_CRAWL_COLUMNS} FROM kb_crawl_targets WHERE folder_id = ? ORDER BY id LIMIT 1", (folder_id,)
        ).fetchone()
        return _crawl(row) if row else None

    def update_crawl_target(self, target_id: int, **fields: object) -> None:
        """Set start_url, config, state, runs, pages, failures or updated_at."""
        unknown = set(fields) - _UPDATABLE_CRAWL_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update crawl target fields {sorted(unknown)!r}")
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)  # names from the allow-list above only
        with self._write(content=False) as conn:
            conn.execute(f"UPDATE kb_crawl_targets SET {assignments} WHERE id = ?", (*fields.values(), target_id))

    def add_workspace_source(self, workspace_id: int, source_id: int) -> None:
        """Make a knowledge base's source a member of its workspace (one row: no read-modify-write
        of the member list, which two bases made at once would race on)."""
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO workspace_members(workspace_id, source_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (workspace_id, source_id),
            )

    # -- client whitelists ----------------------------------------------------------------

    def client_whitelist(self, workspace_id: int) -> tuple[bool, tuple[str, ...]]:
        """(whitelist mode on, the external user ids allowed) of a workspace."""
        mode = self._conn.execute(
            "SELECT enabled FROM client_whitelist_modes WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()
        rows = self._conn.execute(
            "SELECT external_user_id FROM client_whitelist WHERE workspace_id = ? ORDER BY external_user_id",
            (workspace_id,),
        ).fetchall()
        return bool(mode and mode[0]), tuple(str(r[0]) for r in rows)

    def set_client_whitelist(self, workspace_id: int, *, enabled: bool, external_user_ids: Sequence[str]) -> None:
        """Replace a workspace's whitelist mode and list."""
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO client_whitelist_modes(workspace_id, enabled) VALUES (?, ?) "
                "ON CONFLICT (workspace_id) DO UPDATE SET enabled = excluded.enabled",
                (workspace_id, 1 if enabled else 0),
            )
            conn.execute("DELETE FROM client_whitelist WHERE workspace_id = ?", (workspace_id,))
            conn.executemany(
                "INSERT INTO client_whitelist(workspace_id, external_user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(workspace_id, u) for u in sorted(set(external_user_ids))],
            )


def ranges_json(ranges: Sequence[dict[str, int]]) -> str:
    """The stored form of FAQ ranges."""
    return json.dumps(list(ranges), separators=(",", ":"))
