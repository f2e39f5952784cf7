"""Help Scout Mailbox API v2: the client, the operations the planner records, webhooks.

`client.HelpScoutClient` talks to the API (OAuth2, rate limits, retries, pagination);
`ops` builds the JSON operations stored in the outbox; `webhook` wakes the poller.
"""
