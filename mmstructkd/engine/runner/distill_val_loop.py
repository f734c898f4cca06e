"""Validation that evaluates the student and, optionally, the teacher."""
from typing import Callable, Dict, List, Optional, Union

from mmengine.evaluator import Evaluator
from mmengine.runner import ValLoop
from torch.utils.data import DataLoader

from mmstructkd.models.utils.model_wrappers import unwrap_model
from mmstructkd.registry import LOOPS
from .teacher_evaluation import evaluate_teachers

EVALUATE_TEACHER = ('once', 'always', 'never')


@LOOPS.register_module()
class SingleTeacherDistillValLoop(ValLoop):
    """Evaluate the student as usual, and the teacher with ``teacher.``
    prefixed metrics (several teachers: ``teacher.<name>.``, each once).

    A wrongly loaded teacher is the most common way distillation fails
    silently; its metric next to the student's shows it at once. The
    student's validation is mmengine's ``ValLoop.run`` (hooks, validation
    losses); the teacher is evaluated right after the student's metrics are
    computed, within the same ``before_val``/``after_val`` hooks, and its
    metrics reach the ``after_val_epoch`` hooks with the student's.

    Args:
        runner, dataloader, evaluator, fp16: as ``mmengine.runner.ValLoop``.
        evaluate_teacher: ``'once'`` (first validation only, the default:
            the teacher is frozen, so its metric cannot change),
            ``'always'`` or ``'never'``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 evaluate_teacher: str = 'once') -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        if evaluate_teacher not in EVALUATE_TEACHER:
            raise ValueError(
                f'evaluate_teacher must be "once", "always" or "never", got '
                f'{evaluate_teacher!r}.')
        self.evaluate_teacher = evaluate_teacher
        self.teacher_metrics: Dict[str, float] = {}

    @property
    def algorithm(self):
        return unwrap_model(self.runner.model)

    def run(self) -> dict:
        """``ValLoop.run``, whose metrics include the teacher's."""
        student_evaluator = self.evaluator
        # For this validation only: elsewhere (TeacherCheckHook, the
        # teacher's own evaluation) the evaluator is the plain one.
        self.evaluator = WithTeacherMetrics(student_evaluator,
                                            self.run_teacher_if_due)
        try:
            return super().run()
        finally:
            self.evaluator = student_evaluator

    def run_teacher_if_due(self, evaluator: Evaluator) -> Dict[str, float]:
        """The teacher's metrics: evaluated now with ``evaluator`` as
        ``evaluate_teacher`` says, else those of an earlier validation
        (none for ``'never'``)."""
        if self.evaluate_teacher == 'always' or (
                self.evaluate_teacher == 'once' and not self.teacher_metrics):
            self.teacher_metrics = self.run_teacher(evaluator)
        return self.teacher_metrics

    def run_teacher(self, evaluator: Optional[Evaluator] = None
                    ) -> Dict[str, float]:
        """The teacher's metrics, ``teacher.`` prefixed (with several
        teachers, each one's, ``teacher.<name>.`` prefixed)."""
        return evaluate_teachers(self.algorithm.teachers, self.dataloader,
                                 evaluator or self.evaluator, fp16=self.fp16)


class WithTeacherMetrics:
    """An evaluator whose ``evaluate`` adds the teacher's metrics to the
    student's; everything else is the wrapped evaluator's.

    ``ValLoop.run`` computes the metrics and hands them to the
    ``after_val_epoch`` hooks (logger, best checkpoint) with no step in
    between: the evaluator's ``evaluate`` is where the teacher's can join.

    Args:
        evaluator: the val loop's evaluator.
        teacher_metrics: called with ``evaluator``, returns the metrics to
            add (evaluating the teacher with it when due).
    """

    def __init__(self, evaluator: Evaluator,
                 teacher_metrics: Callable[[Evaluator], Dict[str, float]]
                 ) -> None:
        self.evaluator = evaluator
        self.teacher_metrics = teacher_metrics

    def evaluate(self, size: int) -> dict:
        metrics = self.evaluator.evaluate(size)
        metrics.update(self.teacher_metrics(self.evaluator))
        return metrics

    def __getattr__(self, name: str):
        # Only reached for what this class does not define itself.
        if name == 'evaluator':  # not set yet (e.g. while copied)
            raise AttributeError(name)
        return getattr(self.evaluator, name)
