"""The CSRF-protected forms of the browser pages."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length, Regexp, ValidationError

from core.validation import USERNAME_PATTERN, storable


def storable_text(form, field):
    """Refuse text no database can store (NUL, unpaired surrogates) before it reaches a query."""
    if field.data and not storable(field.data):
        raise ValidationError("Use ordinary characters.")


class LoginForm(FlaskForm):
    """Log in with a username and password."""

    username = StringField("Username", validators=[InputRequired(), Length(max=32), storable_text])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=128), storable_text])


class RegisterForm(FlaskForm):
    """Create an account; usernames follow the protocol's rules."""

    username = StringField(
        "Username",
        validators=[
            InputRequired(),
            Regexp(USERNAME_PATTERN.pattern + r"\Z", message="3 to 32 letters, digits, or _ . -"),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(), Length(min=8, max=128, message="8 to 128 characters"), storable_text],
    )
    confirm = PasswordField("Repeat password", validators=[EqualTo("password", "Passwords differ")])
