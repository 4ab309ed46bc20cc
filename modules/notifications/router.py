"""`/dev/mail`: the embedded mailbox (MAIL_DIR) in a browser, in development only (without
SMTP_URL there is nowhere else to read what was sent). Elsewhere these paths are 404.

A message is shown as its text part, escaped; its HTML part is not rendered on this origin
(mail is content from elsewhere), the raw .eml is there to open in a mail client.
"""

from __future__ import annotations

from email.message import EmailMessage

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from core.deps import Context
from core.errors import NotFound
from core.mail import mailbox, stored_message
from modules.notifications.render import environment

router = APIRouter(include_in_schema=False)


def _directory(ctx: Context) -> str:
    s = ctx.settings
    if s.environment != "development" or s.smtp_url is not None:
        raise NotFound()
    return s.mail_dir


def _message(ctx: Context, name: str) -> EmailMessage:
    message = stored_message(_directory(ctx), name)
    if message is None:
        raise NotFound("No such message")
    return message


@router.get("/dev/mail", response_class=HTMLResponse)
async def list_mail(ctx: Context) -> HTMLResponse:
    directory = _directory(ctx)
    page = environment.get_template("_mailbox.html")
    return HTMLResponse(page.render(directory=directory, message=None, messages=mailbox(directory)))


@router.get("/dev/mail/{name}", response_class=HTMLResponse)
async def show_mail(name: str, ctx: Context) -> HTMLResponse:
    message = _message(ctx, name)
    body = message.get_body(preferencelist=("plain",))
    attachments = [a.get_filename() or a.get_content_type() for a in message.iter_attachments()]
    page = environment.get_template("_mailbox.html")
    return HTMLResponse(
        page.render(
            directory=ctx.settings.mail_dir,
            name=name,
            message=message,
            text=body.get_content() if body is not None else "",
            attachments=attachments,
        )
    )


@router.get("/dev/mail/{name}/raw")
async def raw_mail(name: str, ctx: Context) -> Response:
    message = _message(ctx, name)
    return Response(
        bytes(message),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
