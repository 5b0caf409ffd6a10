"""Subcommands imported only when they run, so ``paramcast --help`` loads neither torch nor the methods.

A group lists its lazy commands from ``name -> ("module:attribute", help)``; the help line is all a
listing needs, so the module is imported only when the command itself is resolved (run, or asked for
its own ``--help``). ``attribute`` is a :class:`typer.Typer` (a sub-group) or a command function.
"""

from __future__ import annotations

import importlib

import click
import typer
from typer.core import TyperGroup

__all__ = ["lazy_group"]


def _load(name: str, target: str, help: str) -> click.Command:
    module, attr = target.split(":")
    obj = getattr(importlib.import_module(module), attr)
    holder = typer.Typer()
    holder.callback()(lambda: None)  # a group, so that typer keeps ``name`` as a subcommand
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name, help=help)
    else:
        holder.command(name, help=help)(obj)
    return typer.main.get_command(holder).commands[name]


def lazy_group(commands: dict[str, tuple[str, str]]) -> type[TyperGroup]:
    """A :class:`~typer.core.TyperGroup` class that adds ``commands`` (loaded on use) after its own."""

    class LazyGroup(TyperGroup):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return [*super().list_commands(ctx), *(n for n in commands if n not in self.commands)]

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name in self.commands or cmd_name not in commands:
                return super().get_command(ctx, cmd_name)
            return click.Command(cmd_name, help=commands[cmd_name][1])  # a listing needs only the help line

        def resolve_command(self, ctx: click.Context, args: list[str]):
            if args and args[0] in commands and args[0] not in self.commands:
                self.add_command(_load(args[0], *commands[args[0]]))
            return super().resolve_command(ctx, args)

    return LazyGroup
