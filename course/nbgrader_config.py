"""nbgrader's configuration for the course (read by `nbgrader ...` run in this folder and by `bnn-teach grade`).

The course root is the repository: sources in solutions/<id>/<id>.ipynb (generated from <id>.py), the
student release in assignments/<id>/, everything the grading produces under course/ (gitignored).
"""
import os

c = get_config()  # noqa: F821 - nbgrader's config loader defines get_config

ROOT = os.environ.get("BNN_TEACH_COURSE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "bnn_teach"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = os.path.join("course", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("course", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("course", "feedback")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "course", "gradebook.db")
# the jupytext sources stay private: only the notebooks are released
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]
c.Exchange.root = os.path.join(ROOT, "course", "exchange")
c.Exchange.path_includes_course = True

# nbgrader's default is 30 s a cell; graded cells use FAST sizes and finish in seconds, and a cell
# that runs longer (an infinite loop) is stopped and scores 0
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
