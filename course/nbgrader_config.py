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
# nbgrader's exchange: the hub's (course/jupyterhub/, which sets BNN_TEACH_EXCHANGE), else a folder of the course
c.Exchange.root = os.environ.get("BNN_TEACH_EXCHANGE") or os.path.join(ROOT, "course", "exchange")
c.Exchange.path_includes_course = True

# Autograding runs the notebook with bnn_teach's GuardedExecute in place of nbgrader's Execute (the rest
# of nbgrader's steps unchanged): torch and BLAS on one thread, so a busy machine does not change a grade;
# each cell limited in CPU seconds (every test cell needs <= 10 s of one core; a runaway loop is stopped
# at cpu_limit) and, for a cell that sleeps or blocks, in wall seconds; a cell past a limit scores 0 and
# the notebook goes on; when the kernel dies, the cells after it score 0 and those before keep their points.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades  # noqa: E402

from bnn_teach.grading.execute import GuardedExecute  # noqa: E402

c.Autograde.autograde_preprocessors = [GuardedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
# each kernel in a sandbox (bnn_teach/grading/sandbox.py: bubblewrap; `bnn-teach grade autograde` turns it
# off, and marks the results "unsandboxed", only where none can be made)
c.GuardedExecute.sandbox = True
c.GuardedExecute.cpu_limit = 30.0
c.GuardedExecute.wall_limit = 300.0
c.GuardedExecute.interrupt_grace = 15.0
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
