"""Password rules for users the administrator creates and passwords users change (pure)."""

from __future__ import annotations

MIN_LENGTH = 10
PASSWORD_RULES = f"at least {MIN_LENGTH} characters, not containing the user name, not a common password"
"""The rules in one line, for the API document."""
COMMON = frozenset({
    "1234567890", "12345678910", "0123456789", "1111111111", "0000000000", "1234512345", "123456789a",
    "a123456789", "abcdefghij", "qwertyuiop", "1qaz2wsx3edc", "1q2w3e4r5t", "qwerty12345", "password12",
    "password123", "passw0rd123", "iloveyou12", "admin12345", "admin123456", "administrator", "citywall123",
    "woaini1314", "5201314520", "88888888888", "6666666666", "abc1234567", "aa12345678", "zxcvbnm123",
})
"""A small list of passwords seen first in every leaked list (and the demo's own); longer lists belong to a site."""


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` may not be used by ``username`` (Chinese, then English), or None when it is fine."""
    if len(password) < MIN_LENGTH:
        return f"密码至少 {MIN_LENGTH} 个字符 (at least {MIN_LENGTH} characters)"
    if password.lower() == username.lower() or username.lower() in password.lower():
        return "密码不能包含用户名 (must not contain the user name)"
    if password.lower() in COMMON or len(set(password)) <= 2:
        return "密码过于常见，请换一个 (too common)"
    return None
