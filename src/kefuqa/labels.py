"""Words people read for the codes of the findings JSON, one vocabulary for the HTML report, the CLI and
the workbench (core: no I/O, imports nothing of kefuqa)."""

from __future__ import annotations

# severity of a rule / finding (DESIGN §3); "event" is the workbench's word for an event row
SEVERITY_LABELS: dict[str, str] = {
    "fatal": "红线",
    "critical": "严重",
    "major": "重要",
    "minor": "一般",
    "info": "提示",
    "event": "事件",
}

# rule kinds (src/kefuqa/kinds): what a rule checks, in the words of an inspector
KIND_LABELS: dict[str, str] = {
    "phrase": "用语检测", "required": "必说话术", "sequence": "流程顺序", "conditional": "条件触发",
    "count": "次数", "rate": "语速", "ratio": "占比", "silence": "静音", "overlap": "抢话",
    "monologue": "长段独白", "repeat_ask": "重复询问", "intent": "语义判断", "metric": "指标",
    "event": "事件识别", "voice": "声音特征",
}

# audit log actions (service): what someone did
AUDIT_LABELS: dict[str, str] = {
    "auth.login": "登录", "auth.logout": "退出", "auth.fail": "登录失败",
    "conversation.ingest": "导入会话", "conversation.upload_errors": "导入失败的文件",
    "conversation.rescore": "重新评分", "conversation.delete": "删除会话",
    "finding.confirm": "确认扣分", "finding.reject": "驳回扣分", "finding.missed": "补录漏检",
    "finding.missed_delete": "删除漏检", "appeal.create": "提交申诉", "appeal.accept": "申诉成立",
    "appeal.reject": "维持扣分", "appeal.moot": "申诉自动结束", "rulebook.upload": "上传规则集", "rulebook.activate": "启用规则集",
    "rulebook.lint_failed": "规则集校验未通过", "user.create": "创建用户", "user.update": "修改用户",
    "user.password": "修改密码", "export.csv": "导出CSV", "agent.export": "导出坐席数据",
    "plan.create": "创建抽检计划", "assignment.done": "完成抽检任务", "calibration.create": "发起校准",
    "calibration.verdict": "校准评判", "calibration.adopt": "采纳校准结论", "calibration.close": "结束校准",
    "coaching.create": "创建辅导", "coaching.acknowledge": "确认辅导", "coaching.dispute": "对辅导有异议",
    "retention.apply": "执行数据保留", "training.assign": "布置培训", "training.attempt": "完成培训练习",
}

# the call fields and measures rules name (DESIGN §1, engine/measures.py), in words; a company rulebook's own
# metric keeps its name
MEASURE_NAMES: dict[str, str] = {
    "ring_seconds": "振铃时长（秒）", "customer_first_delay": "接通后客户开口前的等待（秒）",
    "ended_by": "挂断方", "direction": "呼叫方向", "channel": "渠道", "ended_in_transfer": "以转接结束",
    "max_hold_seconds": "最长等候（秒）", "loudness_rise_db": "客户激动后坐席音量升高（dB）",
    "duration_seconds": "通话时长（秒）", "started_at": "通话开始时间", "received_at": "请求到达时间",
    "first_response_at": "首次回复时间",
}
OP_WORDS: dict[str, str] = {">": "大于", ">=": "不少于", "<": "小于", "<=": "不超过", "==": "为", "!=": "不为",
                            "in": "为以下之一：", "not in": "不为以下之一："}
VALUE_NAMES: dict[str, str] = {
    "agent": "坐席", "customer": "客户", "system": "系统（线路）", "inbound": "呼入", "outbound": "外呼",
    "phone": "电话", "chat": "在线", "email": "邮件", "web": "网页表单", "onsite": "现场", "True": "是", "False": "否",
}


def missing(*fields: str) -> str:
    """Why a rule could not be checked: 「缺少挂断方（ended_by）」 — the words, and the field to fill in the export
    (the word 缺少 is what kefuqa.coverage counts as input missing)."""
    return "缺少" + " 或 ".join(f"{MEASURE_NAMES[f]}（{f}）" if f in MEASURE_NAMES else f" {f}" for f in fields)
