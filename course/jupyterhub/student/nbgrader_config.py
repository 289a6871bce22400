"""nbgrader's configuration for a student on the course's hub: the course and the exchange (set by the hub)."""
import os

c = get_config()  # noqa: F821 - nbgrader's config loader defines get_config

c.CourseDirectory.course_id = "bnn_teach"
c.Exchange.root = os.environ.get("BNN_TEACH_EXCHANGE", "/srv/bnn_teach_hub/exchange")
c.Exchange.path_includes_course = False
