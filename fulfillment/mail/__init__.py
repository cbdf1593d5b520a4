"""Email: the messages Kwika sends (tickets, the provider's new-sale notice, reminders, refund-due
notices), each exactly once, over SMTP.

- `message`: letters from Jinja2 templates (text + HTML, autoescaped) to MIME bytes.
- `smtp`: the SMTP client (aiosmtplib), telling temporary failures from permanent ones.
- `log`: the `email_log` table: claim before sending, mark after; the exactly-once guard.
- `content`: what an order's letters say, loaded from Postgres.
- `postman`: one letter, once: claim, attach, send, record.
- `delivery`: the deliveries-stream consumer; `schedule`: reminders and refund-due notices.
- `devbox`: the development mailbox's SMTP server (`kwika up` with no SMTP configured).
"""
