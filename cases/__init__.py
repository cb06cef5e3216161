"""City-management cases: categories and codes, workflow state machine, dispatch, deadlines, store, filing policy.

| module | owns |
| --- | --- |
| ``categories`` | 部件/事件 categories, codes, time limits per urgency, detector event → category |
| ``calendar`` | the work calendar and deadline arithmetic (工作时 / 工作日 / 自然时), pure |
| ``grid`` | unit grid cells (万米单元网格): GeoJSON model, point lookup, overlap checks |
| ``dispatch`` | category × grid/street → exactly one responsible unit, with a fallback |
| ``loader`` / ``bundle`` | reading the four config files with errors naming file and key path |
| ``workflow`` | the case state machine: stages, side paths, role checks, Chinese labels, pure |
| ``store`` | ``CaseStore``: SQLite (WAL) or PostgreSQL, alarm index, event outbox, versions, review claims, webhooks |
| ``migrations`` | the schema as numbered migrations, one SQL for both databases |
| ``filing`` | ``CaseFiler``: alarms → filed / attached / video-verified cases; ``build_filer`` |
| ``desk`` | ``CaseDesk``: people's workflow actions on stored cases |
| (``messages``) | ``CaseEvent`` (stream ``case_events``), ``CaseDeadlineAlarm`` and ``AlarmRejected`` live there |
| ``worker`` | ``CaseWorker``: consume ``alarms``, file, publish from the outbox, ack |
| ``stats`` / ``export`` | 立案数, 结案率, 按期结案率, 处置率, 返工率 per unit/grid/category/period (pure); CSV, XLSX |
| ``webhooks`` | ``WebhookSender``: each case event POSTed to the city platform from the outbox, retried till sent |
| ``review`` | ``ReviewDesk``: reviewers claim detections with a lease, confirm → case, reject → false positive |
"""
