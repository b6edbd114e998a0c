"""The local stack (``ecrcache local`` / ``make local``): the whole controller on one machine.

* :mod:`.template` -- ``template.yaml`` parsed, ``Globals`` applied, intrinsics resolved;
* :mod:`.provision` -- the stack's resources created in the embedded AWS from the template;
* :mod:`.host` -- a function host process per function (one Lambda sandbox: one invocation at a time);
* :mod:`.gateway` -- the REST API on HTTP, as API Gateway events to the API function;
* :mod:`.runner` -- the event runner: DynamoDB stream, EventBridge rules and schedules, wired from
  each function's ``Events``;
* :mod:`.supervisor` -- starts and stops all of it (``ecrcache local``);
* :mod:`.demo` -- ``make demo``: a scripted tour on a background local stack.
"""
