"""Contains all the data models used in inputs/outputs"""

from .activity_info import ActivityInfo
from .activity_list import ActivityList
from .allocation_info import AllocationInfo
from .attempt_assignment import AttemptAssignment
from .attempt_assignment_env import AttemptAssignmentEnv
from .attempt_detail import AttemptDetail
from .attempt_event import AttemptEvent
from .attempt_event_kind_type_0 import AttemptEventKindType0
from .attempt_event_kind_type_0_type import AttemptEventKindType0Type
from .attempt_event_kind_type_1 import AttemptEventKindType1
from .attempt_event_kind_type_1_type import AttemptEventKindType1Type
from .attempt_event_kind_type_2 import AttemptEventKindType2
from .attempt_event_kind_type_2_type import AttemptEventKindType2Type
from .attempt_event_kind_type_3 import AttemptEventKindType3
from .attempt_event_kind_type_3_type import AttemptEventKindType3Type
from .attempt_event_kind_type_4 import AttemptEventKindType4
from .attempt_event_kind_type_4_type import AttemptEventKindType4Type
from .attempt_event_kind_type_5 import AttemptEventKindType5
from .attempt_event_kind_type_5_type import AttemptEventKindType5Type
from .attempt_event_kind_type_6 import AttemptEventKindType6
from .attempt_event_kind_type_6_type import AttemptEventKindType6Type
from .attempt_event_kind_type_7 import AttemptEventKindType7
from .attempt_event_kind_type_7_type import AttemptEventKindType7Type
from .attempt_event_kind_type_8 import AttemptEventKindType8
from .attempt_event_kind_type_8_type import AttemptEventKindType8Type
from .attempt_event_kind_type_9 import AttemptEventKindType9
from .attempt_event_kind_type_9_type import AttemptEventKindType9Type
from .attempt_event_kind_type_10 import AttemptEventKindType10
from .attempt_event_kind_type_10_type import AttemptEventKindType10Type
from .attempt_key import AttemptKey
from .audit_entry import AuditEntry
from .audit_list import AuditList
from .command_dto_type_0 import CommandDtoType0
from .command_dto_type_1 import CommandDtoType1
from .compute_env import ComputeEnv
from .compute_env_detail import ComputeEnvDetail
from .compute_env_detail_resources_type_0 import ComputeEnvDetailResourcesType0
from .compute_env_list import ComputeEnvList
from .compute_env_resources_type_0 import ComputeEnvResourcesType0
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .event_page import EventPage
from .event_record import EventRecord
from .health import Health
from .heartbeat_request import HeartbeatRequest
from .heartbeat_response import HeartbeatResponse
from .input_mapping_dto import InputMappingDto
from .instance_detail import InstanceDetail
from .instance_list import InstanceList
from .job_detail import JobDetail
from .job_list import JobList
from .job_summary import JobSummary
from .join_token import JoinToken
from .lease_request import LeaseRequest
from .lease_response import LeaseResponse
from .log_append_request import LogAppendRequest
from .log_append_response import LogAppendResponse
from .log_chunk import LogChunk
from .node_info import NodeInfo
from .node_list import NodeList
from .node_ref import NodeRef
from .node_revoked import NodeRevoked
from .openapi_response_200 import OpenapiResponse200
from .output_mapping_dto import OutputMappingDto
from .project import Project
from .project_list import ProjectList
from .project_spec import ProjectSpec
from .provider_error import ProviderError
from .register_request import RegisterRequest
from .register_response import RegisterResponse
from .registry_auth import RegistryAuth
from .report_request import ReportRequest
from .report_response import ReportResponse
from .scale_request import ScaleRequest
from .storage_profile import StorageProfile
from .storage_profile_list import StorageProfileList
from .storage_profile_spec import StorageProfileSpec
from .storage_settings import StorageSettings
from .submit_json_body import SubmitJsonBody
from .submit_response import SubmitResponse
from .task_detail import TaskDetail
from .task_detail_counts import TaskDetailCounts
from .task_template import TaskTemplate
from .task_template_task import TaskTemplateTask
from .template_list import TemplateList
from .token_created import TokenCreated
from .token_info import TokenInfo
from .token_list import TokenList
from .token_request import TokenRequest
from .why import Why

__all__ = (
    "ActivityInfo",
    "ActivityList",
    "AllocationInfo",
    "AttemptAssignment",
    "AttemptAssignmentEnv",
    "AttemptDetail",
    "AttemptEvent",
    "AttemptEventKindType0",
    "AttemptEventKindType0Type",
    "AttemptEventKindType1",
    "AttemptEventKindType1Type",
    "AttemptEventKindType2",
    "AttemptEventKindType2Type",
    "AttemptEventKindType3",
    "AttemptEventKindType3Type",
    "AttemptEventKindType4",
    "AttemptEventKindType4Type",
    "AttemptEventKindType5",
    "AttemptEventKindType5Type",
    "AttemptEventKindType6",
    "AttemptEventKindType6Type",
    "AttemptEventKindType7",
    "AttemptEventKindType7Type",
    "AttemptEventKindType8",
    "AttemptEventKindType8Type",
    "AttemptEventKindType9",
    "AttemptEventKindType9Type",
    "AttemptEventKindType10",
    "AttemptEventKindType10Type",
    "AttemptKey",
    "AuditEntry",
    "AuditList",
    "CommandDtoType0",
    "CommandDtoType1",
    "ComputeEnv",
    "ComputeEnvDetail",
    "ComputeEnvDetailResourcesType0",
    "ComputeEnvList",
    "ComputeEnvResourcesType0",
    "ErrorBody",
    "ErrorDetail",
    "EventPage",
    "EventRecord",
    "Health",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "InputMappingDto",
    "InstanceDetail",
    "InstanceList",
    "JobDetail",
    "JobList",
    "JobSummary",
    "JoinToken",
    "LeaseRequest",
    "LeaseResponse",
    "LogAppendRequest",
    "LogAppendResponse",
    "LogChunk",
    "NodeInfo",
    "NodeList",
    "NodeRef",
    "NodeRevoked",
    "OpenapiResponse200",
    "OutputMappingDto",
    "Project",
    "ProjectList",
    "ProjectSpec",
    "ProviderError",
    "RegisterRequest",
    "RegisterResponse",
    "RegistryAuth",
    "ReportRequest",
    "ReportResponse",
    "ScaleRequest",
    "StorageProfile",
    "StorageProfileList",
    "StorageProfileSpec",
    "StorageSettings",
    "SubmitJsonBody",
    "SubmitResponse",
    "TaskDetail",
    "TaskDetailCounts",
    "TaskTemplate",
    "TaskTemplateTask",
    "TemplateList",
    "TokenCreated",
    "TokenInfo",
    "TokenList",
    "TokenRequest",
    "Why",
)
