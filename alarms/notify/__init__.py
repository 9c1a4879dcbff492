"""Notifications: telling people about alarms, once, durably, on the channels they read.

The package is Alertmanager's `notify/` and `nflog/` in one place:

    config      the notify.yaml file: receivers, routes, rosters, response clocks, quiet hours
    nflog       the notification log in the state database (what was, is and will be sent)
    message     bilingual (zh-CN first, then English) texts of a notification
    channels    webhook, email (SMTP), WeCom and DingTalk group robots
    dispatcher  sends due log entries: dedup (claim) → route → send → record, with retries
    notifier    AlarmNotifier: alarm events → log entries at once
    worker      a thread that runs the dispatcher
    setup       builds the whole subsystem from a config file (runtime calls it)

Who is told when is decided in `alarms.routing` (who) and `alarms.escalation` (when). This
package holds no alarm state; the log is kept apart from the alarms (STYLE.md).
"""
