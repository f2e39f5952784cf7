"""An empty store answers no one twice: rebuilding state from what the mailbox remembers.

A worker whose store was lost (a platform that resets local disks, a wiped volume) starts
on an empty one while its mailbox still holds the history. Before its first read it looks
for its own past work: with `SUPPORTBOT_IMAP_SENT_FOLDER`, our messages in that folder;
in Help Scout, our threads (`bot.helpscout.marker`). From them it recreates the tickets,
their states and their pending follow-up timers, and marks the inbound messages they
answered as known; only what is really new is then answered (`docs/state.md`).

    evidence.py      our messages' headers -> SentMessage (ticket, kind, time, what it answered)
    imap_history.py  reading the Sent folder and the support folder's Message-IDs (IMAP)
    helpscout.py     reading the conversations that carry threads of ours (Help Scout)
    replay.py        a ticket's steps -> its state and its pending follow-up (pure)
    restore.py       writing tickets, timers, sent rows and ledger entries into the store
    run.py           when to rebuild (once, on an empty store) and the start-up warning
"""
