#!/bin/sh
# How scripts hand mail to mxa: the same flags as sendmail(8).
set -eu

# Recipients from the header (-t); a lone "." line is not the end (-i).
mxa-sendmail -t -i <<'MAIL'
From: Backup <backup@example.org>
To: admin@example.org
Subject: nightly backup done

All 42 volumes copied.
MAIL

# Recipients as arguments, envelope sender and full name given, the queue
# id printed on stderr (-v).
echo "disk almost full" | mxa-sendmail -v -f monitor@example.org -F "Disk monitor" admin@example.org

# What is queued, and its state, one line per recipient.
mxa-queue list
