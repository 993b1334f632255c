"""Operators' commands: `flask --app app users disable|delete|create-admin|grant-admin|revoke-admin NAME`."""

import click
from flask.cli import AppGroup

from core.errors import ProtocolError
from extensions import db
from models import User
from services import accounts
from services.channels import user_room

users = AppGroup("users", help="Manage accounts.")


def find(username):
    """Return the user called username, or stop with a clear message."""
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        raise click.ClickException(f"no user called {username}")
    return user


@users.command("disable")
@click.argument("username")
def disable_user(username):
    """Stop a user from logging in, and disconnect everything they are logged in with."""
    accounts.disable(find(username))
    click.echo(f"{username} is disabled and logged out everywhere")


@users.command("delete")
@click.argument("username")
def delete_user(username):
    """Delete an account: logged out everywhere, name freed; its messages stay, shown as deleted-<id>."""
    user = find(username)
    new_name = f"deleted-{user.id}"
    accounts.delete(user)
    click.echo(f"{username} is deleted (now {new_name})")


@users.command("create-admin")
@click.argument("username")
@click.password_option()
def create_admin(username, password):
    """Create an account that may also log in to the Socket.IO Admin UI (/admin/, with ADMIN_UI=1)."""
    try:
        user = accounts.create_user(username, password)
    except ProtocolError as error:
        raise click.ClickException(error.message) from None
    set_admin(user, True)
    click.echo(f"{username} is created, an admin")


@users.command("grant-admin")
@click.argument("username")
def grant_admin(username):
    """Let an existing user log in to the Socket.IO Admin UI (/admin/, with ADMIN_UI=1)."""
    set_admin(find(username), True)
    click.echo(f"{username} is an admin")


@users.command("revoke-admin")
@click.argument("username")
def revoke_admin(username):
    """Stop a user from using the Socket.IO Admin UI, and disconnect their sockets (they reconnect as a user)."""
    set_admin(find(username), False)
    click.echo(f"{username} is no longer an admin")


def set_admin(user, admin):
    """Make the user an admin or not; a former admin's sockets are disconnected (an open Admin UI with them)."""
    user.is_admin = admin
    db.session.commit()
    if not admin:
        accounts.disconnect_sockets(user_room(user.id))
