"""`flowboard token create|list|revoke`: works whether or not `flowboard serve` runs."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from flowboard.audit.log import AuditLog, cli_actor
from flowboard.audit.model import AuditAction
from flowboard.auth.tokens import TokenService
from flowboard.config import Settings
from flowboard.models.tokens import ApiToken

TOKEN_COLUMNS = ("id", "org", "name", "created", "last_used", "state")


def org_name(value: str) -> str:
    """An organisation name as the command line accepts it."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise argparse.ArgumentTypeError("1-64 letters, digits or _ . : -")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument(
        "--org", required=True, type=org_name, help="organisation the token acts for"
    )
    create.add_argument("--name", required=True, help="what the token is for")
    listing = actions.add_parser("list", help="list tokens (never their plain text)")
    listing.add_argument("--org", type=org_name, help="only this organisation's tokens")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", help="token id (tok_...)")


def _describe_token(token: ApiToken) -> str:
    used = f"{token.last_used_at:%Y-%m-%dT%H:%M:%SZ}" if token.last_used_at else "-"
    state = "active" if token.active else f"revoked {token.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    created = f"{token.created_at:%Y-%m-%dT%H:%M:%SZ}"
    return "\t".join((token.id, token.org_id, token.name, created, used, state))


async def _create_token(tokens: TokenService, audit: AuditLog, args: argparse.Namespace) -> int:
    issued = await tokens.create(args.org, args.name)
    await audit.record(
        AuditAction.TOKEN_CREATED, *cli_actor(), args.org, issued.token.id, {"name": args.name}
    )
    sys.stderr.write(f"created {issued.token.id} for org {args.org}; it is shown only once\n")
    sys.stdout.write(f"{issued.plain}\n")  # stdout holds the token alone, for scripts
    return 0


async def _list_tokens(tokens: TokenService, audit: AuditLog, args: argparse.Namespace) -> int:
    rows = ["\t".join(TOKEN_COLUMNS), *(_describe_token(t) for t in await tokens.list(args.org))]
    sys.stdout.write("".join(f"{row}\n" for row in rows))
    return 0


async def _revoke_token(tokens: TokenService, audit: AuditLog, args: argparse.Namespace) -> int:
    revoked = await tokens.revoke(args.id)
    if revoked is None:
        sys.stderr.write(f"flowboard token: no token {args.id!r}\n")
        return 1
    await audit.record(
        AuditAction.TOKEN_REVOKED, *cli_actor(), revoked.org_id, revoked.id, {"name": revoked.name}
    )
    sys.stdout.write(f"revoked {revoked.id}\n")
    return 0


async def _token_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one action against the configured database (the running service's, if any)."""
    from flowboard.db.shared import open_shared_database
    from flowboard.store.tokens import TokenStore

    action = {"create": _create_token, "list": _list_tokens, "revoke": _revoke_token}[args.action]
    async with open_shared_database(settings) as database:
        return await action(TokenService(TokenStore(database)), AuditLog(database), args)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard token create|list|revoke`."""
    return asyncio.run(_token_command(settings, args))
