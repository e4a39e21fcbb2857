"""Branches imported into a store as the janitor's workers do."""

from __future__ import annotations

from breezy import controldir, errors
from breezy.branch import Branch
from breezy.transport import NoSuchFile


def import_branches(
    repo_url: str,
    local: Branch,
    campaign: str,
    run_id: str,
    branches: list[tuple[str, bytes]],
    tags: list[tuple[str, bytes | None]],
    update_current: bool,
) -> None:
    """Store ``branches`` (``(role, revision)``) of a run as the worker does."""
    fmt = controldir.format_registry.make_controldir("bzr")
    for role, revision in branches:
        try:
            root = controldir.ControlDir.open(repo_url)
        except errors.NotBranchError:
            root = controldir.ControlDir.create(repo_url, fmt)
        try:
            root.find_repository()
        except errors.NoRepositoryPresent:
            root.create_repository(shared=True)
        transport = root.user_transport.clone(campaign)
        name = "" if role == "main" else role
        if not transport.has("."):
            try:
                transport.ensure_base()
            except NoSuchFile:
                transport.create_prefix()
        try:
            branch_dir = fmt.initialize_on_transport(transport)
        except errors.AlreadyControlDirError:
            branch_dir = controldir.ControlDir.open_from_transport(transport)
        branch_dir.find_repository()
        try:
            target = branch_dir.open_branch(name=name)
        except errors.NotBranchError:
            target = branch_dir.create_branch(name=name)
        if update_current:
            local.push(target, overwrite=True, stop_revision=revision)
        else:
            target.repository.fetch(local.repository, revision_id=revision)
        target.tags.set_tag(run_id, revision)
        graph = target.repository.get_graph()
        for tag, tagged in tags:
            if tagged is not None:
                if graph.is_ancestor(tagged, target.last_revision()):
                    target.tags.set_tag(f"{run_id}/{tag}", tagged)
                    if update_current:
                        target.tags.set_tag(tag, tagged)
            elif update_current:
                try:
                    target.tags.delete_tag(tag)
                except errors.NoSuchTag:
                    pass
