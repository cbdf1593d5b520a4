"""Pages speak in sentences: every problem the API names for a field has words for people, in
one place (storefront/wording.py)."""

from __future__ import annotations

import re

import pytest

from engine.accounts import Registration
from storefront.api import convert
from storefront.errors import ApiError
from storefront.wording import field_problem, form_message, page_message, sentence


@pytest.mark.parametrize("field, problem, words", [
    ("password", "Expected `str` of length >= 8", "Use at least 8 characters."),
    ("name", "Expected `str` of length >= 1", "Enter at least one character."),
    ("name", "Expected `str` of length <= 120", "Use at most 120 characters."),
    ("email", "Expected `str` matching regex '^[^@]+@'",
     "Enter an email address like name@example.com."),
    ("phone", "Expected `str` matching regex 'x'", "Enter a phone number like +265 991 234 567."),
    ("billing.phone", "Expected `str` matching regex 'x'", "Enter a phone number like +265 991 234 567."),
    ("attendees[1].email", "Expected `str` matching regex 'x'",
     "Enter an email address like name@example.com."),
    ("accept_terms", "must be accepted", "Accept the terms to continue."),
    ("attendees", "3 expected", "Give one attendee per ticket (3 tickets)."),
    ("business_name", "Expected `str` matching regex 'x'",
     "This has characters that are not allowed here."),
    ("business_name", "required", "Enter your business name."),
    ("account_type", "Invalid enum value 'admin'", "Choose one of the options."),
    ("page", "Expected `int` >= 1", "Enter a number in the allowed range."),
    ("page", "Expected `int`, got `str`", "Enter a number."),
    ("date_from", "Invalid RFC3339 encoded datetime", "Enter a date like 2027-01-31."),
    ("email", "already registered",
     "An account with this email address exists already."),
    ("colour", "unknown field", "This is not part of the form."),
    ("password", "too common", "Too common."),
])
def test_field_problems_become_sentences(field, problem, words):
    assert field_problem(field, problem) == words


BAD_REGISTRATIONS = [
    {"email": "x", "name": "N", "password": "long enough"},
    {"email": "a@b.cd", "name": "", "password": "long enough"},
    {"email": "a@b.cd", "name": "N", "password": "short"},
    {"email": "a@b.cd", "name": "N\u202e", "password": "long enough"},
    {"email": "a@b.cd", "name": "N", "password": "long\u0000enough"},
    {"email": "a@b.cd", "name": "N" * 200, "password": "long enough"},
    {"email": "a@b.cd", "name": "N", "password": "long enough", "account_type": "admin"},
    {"email": "a@b.cd", "name": "N", "password": "long enough", "phone": "1" * 40},
    {"email": "a@b.cd", "password": "long enough"},
    {"email": "a@b.cd", "name": "N", "password": "long enough", "is_admin": "yes"},
]


@pytest.mark.parametrize("data", BAD_REGISTRATIONS)
def test_no_registration_problem_reads_like_a_validator(data):
    with pytest.raises(ApiError) as refused:
        convert(data, Registration)
    err = refused.value
    assert err.fields
    said = [form_message(err.message, err.fields)] + [field_problem(f, p)
                                                       for f, p in err.fields.items()]
    for text in said:
        assert not re.search(r"Expected|`|regex|\$\.", text), text
        assert text[0].isupper() and text.endswith((".", "?")), text


def test_messages_without_fields_become_sentences():
    assert sentence("email or password is wrong") == "Email or password is wrong."
    assert form_message("an account exists", {}) == "An account exists."
    assert form_message("x", {"a": "required", "b": "required"}) == (
        "Please correct the fields marked below.")
    assert page_message("sort: Invalid enumeration value 'x'", {"sort": "Invalid enumeration "
                                                                "value 'x'"}) == (
        "Sort: Choose one of the options.")


@pytest.mark.parametrize("email, password, field, words", [
    ("short@example.test", "short", "password", "Use at least 8 characters."),
    ("not-an-email", "long enough", "email", "Enter an email address like name@example.com."),
])
async def test_the_register_page_says_what_to_fix_in_words(client, db, email, password, field,
                                                           words):
    html = await (await client.get("/register")).text()
    token = html.split('name="csrf-token" content="')[1].split('"')[0]
    resp = await client.post("/register", data={
        "csrf_token": token, "name": "Someone", "email": email, "password": password})
    assert resp.status == 422
    html = await resp.text()
    assert f'data-testid="error-{field}">{words}</small>' in html
    assert "Please correct the field marked below." in html
    assert "Expected" not in html and "`" not in html
    assert await db.fetchval("SELECT count(*) FROM users") == 0
